"""TLS from the site config: the API answers over https with the configured certificate; a half-configured
TLS pair is refused at start-up with a clear message."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from api_data.fixtures import serve
from api_data.tls import self_signed_cert
from appliance_data.fixtures import site_config
from conftest import orbox_cli


def test_https_with_the_configured_certificate(api_bundle: Path, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    http = {"tls_cert": str(cert), "tls_key": str(key)}
    with serve(api_bundle, tmp_path, http=http, supervisor={"workers": ["llm"], "critical_workers": ["llm"]},
               verify=trust) as server:
        assert server.url.startswith("https://127.0.0.1:")
        response = httpx.get(server.url + "/v1/models", headers=server.headers(), verify=trust)
        assert response.status_code == 200 and response.json()["data"][0]["id"] == "tiny-q8_0"
        plain = server.url.replace("https://", "http://")
        try:
            refused = httpx.get(plain + "/health/live").status_code != 200
        except httpx.HTTPError:
            refused = True
        assert refused  # no clear-text fallback


def test_half_configured_tls_is_refused(api_bundle: Path, tmp_path: Path) -> None:
    config = site_config(tmp_path, http={"tls_cert": str(tmp_path / "box.crt")})
    (tmp_path / "box.crt").write_text("x")
    result = orbox_cli("serve", "--profile", "dev", "--bundle", str(api_bundle), "--config", str(config),
                       "--port", "0")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "http.tls_cert and http.tls_key: give both or neither" in result.stderr
