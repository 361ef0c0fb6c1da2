"""hawkBit's Direct Device Integration API, the few resources a RAUC box needs.

Paths, headers and fields follow the published DDI API (https://eclipse.dev/hawkbit/rest-api/ddi/):
`GET /{tenant}/controller/v1/{controllerId}` (the base poll), `PUT .../configData`,
`GET .../deploymentBase/{actionId}`, `POST .../deploymentBase/{actionId}/feedback`,
`GET .../cancelAction/{actionId}` and its feedback. hawkBit ignores unknown fields and may add
new ones, so parsing here keeps what the client uses and ignores the rest.

The target token goes only to the configured server's origin: artifact links may point to a CDN,
which gets no token. Nothing here logs a header.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Execution = Literal["closed", "proceeding", "canceled", "scheduled", "rejected", "resumed", "downloaded", "download"]
Finished = Literal["success", "failure", "none"]
_SLEEP = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")


class DdiError(Exception):
    """The server could not be reached, refused a request, or answered outside the DDI API."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Link(_Lenient):
    href: str


class _Polling(_Lenient):
    sleep: str | None = None


class _Config(_Lenient):
    polling: _Polling = Field(default_factory=_Polling)


class _Base(_Lenient):
    config: _Config = Field(default_factory=_Config)
    links: dict[str, _Link] = Field(default_factory=dict, alias="_links")


class Artifact(_Lenient):
    filename: str
    hashes: dict[str, str] = Field(default_factory=dict)
    size: int | None = None
    links: dict[str, _Link] = Field(default_factory=dict, alias="_links")


class Chunk(_Lenient):
    part: str
    version: str
    name: str
    artifacts: list[Artifact] = Field(default_factory=list)


class Deployment(_Lenient):
    download: Literal["skip", "attempt", "forced"] | None = None
    update: Literal["skip", "attempt", "forced"] | None = None
    maintenance_window: Literal["available", "unavailable"] | None = Field(None, alias="maintenanceWindow")
    chunks: list[Chunk]


class DeploymentBase(_Lenient):
    id: str
    deployment: Deployment


class _CancelAction(_Lenient):
    stop_id: str = Field(alias="stopId")


class CancelBase(_Lenient):
    id: str
    cancel_action: _CancelAction = Field(alias="cancelAction")


@dataclass(frozen=True)
class Poll:
    """One base poll: how long to sleep, and the action links the server offers now."""

    sleep_s: float | None
    deployment_href: str | None
    cancel_href: str | None
    config_data_href: str | None



def parse_sleep(text: str | None) -> float | None:
    """hawkBit's polling interval, "HH:MM:SS", in seconds; None when absent or malformed."""
    match = _SLEEP.match(text or "")
    if not match:
        return None
    hours, minutes, seconds = (int(part) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"https": 443, "http": 80}.get(parts.scheme)


class _NoTokenAcrossOrigins(urllib.request.HTTPRedirectHandler):
    """urllib copies every header into a redirect; a redirect to another host must not carry the token."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(newurl) != origin(req.full_url):
            new.remove_header("Authorization")
        return new


class DdiClient:
    """Talks DDI to one server as one controller; every call raises DdiError on failure."""

    def __init__(self, server_url: str, tenant: str, controller_id: str, token: str, *, timeout_s: float = 30.0,
                 ca_file: Path | None = None) -> None:
        self.base_url = f"{server_url.rstrip('/')}/{tenant}/controller/v1/{controller_id}"
        self._origin = origin(server_url)
        self._token = token
        self.timeout_s = timeout_s
        tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._opener = urllib.request.build_opener(_NoTokenAcrossOrigins, urllib.request.HTTPSHandler(context=tls))

    def headers_for(self, url: str) -> dict[str, str]:
        """The token only for the server itself: a download link to another host gets none."""
        return {"Authorization": f"TargetToken {self._token}"} if origin(url) == self._origin else {}

    def poll(self) -> Poll:
        base = self._parse(_Base, self._json("GET", self.base_url), self.base_url)
        href = {name: link.href for name, link in base.links.items()}
        return Poll(parse_sleep(base.config.polling.sleep), href.get("deploymentBase"), href.get("cancelAction"),
                    href.get("configData"))

    def put_config_data(self, attributes: dict[str, str]) -> None:
        """Replace the target's attributes on the server with exactly these."""
        self._json("PUT", f"{self.base_url}/configData", {"mode": "replace", "data": attributes})

    def deployment(self, href: str) -> DeploymentBase:
        return self._parse(DeploymentBase, self._json("GET", href), href)

    def cancel_action(self, href: str) -> CancelBase:
        return self._parse(CancelBase, self._json("GET", href), href)

    def feedback(self, resource: Literal["deploymentBase", "cancelAction"], action: str, execution: Execution,
                 finished: Finished, details: list[str]) -> None:
        body = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "status": {"execution": execution, "result": {"finished": finished}, "details": details}}
        self._json("POST", f"{self.base_url}/{resource}/{action}/feedback", body)

    def open(self, url: str, headers: dict[str, str] | None = None):
        """A streaming GET (artifact downloads); the caller closes the response."""
        request = urllib.request.Request(url, headers={**self.headers_for(url), **(headers or {})})
        return self._send(request, url)

    def _json(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/hal+json, application/json", **self.headers_for(url)}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with self._send(request, url) as response:
            raw = response.read()
        if method != "GET":
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise DdiError(f"GET {url}: answer is not JSON ({exc})") from exc

    def _send(self, request: urllib.request.Request, url: str):
        try:
            return self._opener.open(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DdiError(f"{request.get_method()} {url}: HTTP {exc.code} {exc.reason}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DdiError(f"{request.get_method()} {url}: cannot reach the server ({reason})") from None

    @staticmethod
    def _parse(model: type[_Lenient], data: Any, url: str):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise DdiError(f"GET {url}: not a DDI {model.__name__.lstrip('_')} resource: {where}: {first['msg']}") \
                from None
