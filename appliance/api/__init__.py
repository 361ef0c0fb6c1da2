"""The box's local HTTP API: OpenAI-compatible endpoints, API keys, admission, metrics and the status page.

`create_app(supervisor, keys, settings)` builds the FastAPI application on top of a running
`appliance.supervisor.Supervisor`; `appliance.api.server.HttpServer` runs it with uvicorn inside
`orbox serve`.
"""

from appliance.api.app import ApiSettings, create_app

__all__ = ["ApiSettings", "create_app"]
