"""schemathesis over the live server's OpenAPI schema: no generated input gives a 5xx or a body its schema denies.

Driven through schemathesis' Python API (one hypothesis run per operation) rather than its pytest
plugin, whose `from_fixture` does not work with pytest 9.
"""

from __future__ import annotations

import schemathesis
from api_data.fixtures import Server
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance


def _fuzz(operation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance], timeout=60)

    check()


def test_no_generated_input_gives_a_server_error(api_server: Server) -> None:
    schema = schemathesis.openapi.from_url(api_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {operation.path for operation in operations}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health/live"} <= paths
    for operation in operations:
        _fuzz(operation, api_server.headers())
        _fuzz(operation, {})  # and without a key
