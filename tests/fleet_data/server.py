"""A stand-in for a hawkBit server's DDI API on 127.0.0.1, strict where hawkBit is documented.

No real hawkBit runs here (it is a Java service shipped as a container). This server answers the
DDI resources the box uses, in hawkBit's paths and shapes, and checks every request the client makes
and every response it sends against `ddi.schema.json` (written from the published API), plus the
protocol rules around them: the `Authorization: TargetToken` header, JSON content types, RFC 7233
ranges on artifact downloads, and 410 for feedback to an action that is no longer open. Anything
off is recorded in `violations`, which each test asserts is empty.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA = json.loads((Path(__file__).parent / "ddi.schema.json").read_text())
_REGISTRY = Registry().with_resource("urn:ddi", Resource.from_contents(SCHEMA))


def violations_of(definition: str, document: Any) -> list[str]:
    validator = Draft202012Validator({"$ref": f"urn:ddi#/$defs/{definition}"}, registry=_REGISTRY)
    return [f"{definition}: {'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
            for error in validator.iter_errors(document)]


@dataclass
class Action:
    id: str
    chunks: list[dict[str, Any]]
    download: str = "forced"
    update: str = "forced"
    maintenance_window: str | None = None
    open: bool = True
    feedback: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeHawkbit:
    """Start with `with FakeHawkbit(...) as server:`; `server.url` is the server_url for the client."""

    def __init__(self, tenant: str = "DEFAULT", controller_id: str = "or-box-1", token: str = "t0ken",
                 sleep: str = "00:00:05", tls: tuple[Path, Path] | None = None) -> None:
        self.tenant, self.controller_id, self.token, self.sleep = tenant, controller_id, token, sleep
        self.actions: dict[str, Action] = {}
        self.artifacts: dict[str, bytes] = {}  # path -> content
        self.redirects: set[str] = set()  # artifact paths the server answers with a 302 to the CDN
        self.want_config_data = True
        self.cancel: tuple[str, str] | None = None  # (cancel id, id of the action to stop)
        self.cancel_feedback: list[dict[str, Any]] = []
        self.config_data: list[dict[str, Any]] = []
        self.cut_downloads: list[int] = []  # each download request pops one: send this many body bytes, then drop
        self.ignore_range = False
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._next_module = 20
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*map(str, tls))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        port = self._httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        # The same socket under another name is another origin: it stands in for a CDN, which needs no token.
        self.cdn = self.url.replace("127.0.0.1", "localhost")
        self._links = ("download", "md5sum") if tls else ("download-http", "md5sum-http")

    @property
    def base(self) -> str:
        return f"/{self.tenant}/controller/v1/{self.controller_id}"

    def __enter__(self) -> FakeHawkbit:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def assign(self, action_id: str, files: dict[str, bytes], *, version: str = "2.0.0", sha256: str | None = None,
               cdn: Literal["link", "redirect"] | None = None, **handling: str) -> Action:
        """Assign a distribution set with one software module holding `files`, as a rollout would."""
        module, self._next_module = self._next_module, self._next_module + 1
        artifacts = []
        for name, data in files.items():
            path = f"{self.base}/softwaremodules/{module}/artifacts/{name}"
            self.artifacts[path] = data
            host = self.cdn if cdn == "link" else self.url
            if cdn == "redirect":
                self.redirects.add(path)
            download, md5sum = self._links
            artifacts.append({
                "filename": name, "size": len(data),
                "hashes": {"sha1": hashlib.sha1(data).hexdigest(), "md5": hashlib.md5(data).hexdigest(),
                           "sha256": sha256 or hashlib.sha256(data).hexdigest()},
                "_links": {download: {"href": host + path}, md5sum: {"href": host + path + ".MD5SUM"}},
            })
        chunk = {"part": "os", "version": version, "name": "orbox image", "artifacts": artifacts}
        action = Action(action_id, [chunk], **handling)
        self.actions[action_id] = action
        return action

    def open_action(self) -> Action | None:
        return next((action for action in self.actions.values() if action.open), None)

    # -- resources --------------------------------------------------------------------------------

    def controller_base(self) -> dict[str, Any]:
        links = {}
        action = self.open_action()
        if self.cancel is not None:
            links["cancelAction"] = {"href": f"{self.url}{self.base}/cancelAction/{self.cancel[0]}"}
        elif action is not None:
            links["deploymentBase"] = {"href": f"{self.url}{self.base}/deploymentBase/{action.id}?c=-2127183556"}
        if self.want_config_data:
            links["configData"] = {"href": f"{self.url}{self.base}/configData"}
        return {"config": {"polling": {"sleep": self.sleep}}, "_links": links}

    def deployment_base(self, action: Action) -> dict[str, Any]:
        deployment: dict[str, Any] = {"download": action.download, "update": action.update, "chunks": action.chunks}
        if action.maintenance_window:
            deployment["maintenanceWindow"] = action.maintenance_window
        return {"id": action.id, "deployment": deployment}

    def record_feedback(self, action_id: str, body: dict[str, Any]) -> int:
        action = self.actions.get(action_id)
        if action is None or not action.open:
            return 410
        action.feedback.append(body)
        if body["status"]["execution"] == "closed":
            action.open = False
            if body["status"]["result"]["finished"] == "success":
                self.want_config_data = True  # hawkBit asks for the attributes again after a successful update
        return 200

    def record_cancel_feedback(self, cancel_id: str, body: dict[str, Any]) -> int:
        if self.cancel is None or self.cancel[0] != cancel_id:
            return 410
        self.cancel_feedback.append(body)
        execution = body["status"]["execution"]
        if execution in ("closed", "rejected"):
            stop_id = self.cancel[1]
            self.cancel = None
            if execution == "closed" and stop_id in self.actions:
                self.actions[stop_id].open = False
        return 200


def _handler(server: FakeHawkbit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            body = None
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with server._lock:
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw
                server.requests.append(Request(method, self.path, dict(self.headers.items()), body))
                if server.cdn.endswith("//" + (self.headers.get("Host") or "")):
                    if path in server.artifacts and method == "GET":
                        return self._download(path)
                    server.violations.append(f"{method} {self.path} sent to the CDN")
                    return self._error(404, "hawkbit.server.error.repo.entitiyNotFound")
                if self.headers.get("Authorization") != f"TargetToken {server.token}":
                    return self._error(401, "hawkbit.server.error.security.unauthorized")
                if path in server.redirects and method == "GET":
                    return self._redirect(server.cdn + path)
                if path in server.artifacts and method == "GET":
                    return self._download(path)
                routes = [
                    ("GET", rf"^{server.base}$", self._base),
                    ("PUT", rf"^{server.base}/configData$", self._config_data),
                    ("GET", rf"^{server.base}/deploymentBase/(\d+)$", self._deployment),
                    ("POST", rf"^{server.base}/deploymentBase/(\d+)/feedback$", self._feedback),
                    ("GET", rf"^{server.base}/cancelAction/(\d+)$", self._cancel),
                    ("POST", rf"^{server.base}/cancelAction/(\d+)/feedback$", self._cancel_feedback),
                ]
                for route_method, pattern, handler in routes:
                    match = re.match(pattern, path)
                    if match and route_method == method:
                        return handler(body, *match.groups())
                server.violations.append(f"{method} {self.path}: no such DDI resource")
                self._error(404, "hawkbit.server.error.repo.entitiyNotFound")

        def _json_body(self, body: Any, definition: str) -> bool:
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                server.violations.append(f"{self.command} {self.path}: Content-Type "
                                         f"{self.headers.get('Content-Type')!r}, expected application/json")
                self._error(415, "hawkbit.server.error.unsupportedMediaType")
                return False
            problems = violations_of(definition, body)
            if problems:
                server.violations.extend(f"{self.command} {self.path}: {problem}" for problem in problems)
                self._error(400, "hawkbit.server.error.rest.body.notReadable")
                return False
            return True

        def _base(self, _body: Any) -> None:
            self._send_json(200, server.controller_base(), "controllerBase")

        def _config_data(self, body: Any) -> None:
            if self._json_body(body, "configData"):
                server.config_data.append(body)
                server.want_config_data = False
                self._send_json(200, None, None)

        def _deployment(self, _body: Any, action_id: str) -> None:
            action = server.actions.get(action_id)
            if action is None:
                return self._error(404, "hawkbit.server.error.repo.entitiyNotFound")
            self._send_json(200, server.deployment_base(action), "deploymentBase")

        def _feedback(self, body: Any, action_id: str) -> None:
            if self._json_body(body, "actionFeedback"):
                code = server.record_feedback(action_id, body)
                if code == 200:
                    self._send_json(200, None, None)
                else:
                    self._error(code, "hawkbit.server.error.action.notActive")

        def _cancel(self, _body: Any, cancel_id: str) -> None:
            if server.cancel is None or server.cancel[0] != cancel_id:
                return self._error(404, "hawkbit.server.error.repo.entitiyNotFound")
            self._send_json(200, {"id": cancel_id, "cancelAction": {"stopId": server.cancel[1]}}, "cancel")

        def _cancel_feedback(self, body: Any, cancel_id: str) -> None:
            if self._json_body(body, "actionFeedback"):
                code = server.record_cancel_feedback(cancel_id, body)
                if code == 200:
                    self._send_json(200, None, None)
                else:
                    self._error(code, "hawkbit.server.error.action.notActive")

        def _download(self, path: str) -> None:
            data = server.artifacts[path]
            start, status = 0, 200
            wanted = self.headers.get("Range")
            if wanted and not server.ignore_range:
                match = re.fullmatch(r"bytes=(\d+)-", wanted)
                if not match or int(match.group(1)) >= len(data):
                    server.violations.append(f"GET {path}: Range {wanted!r} is not an open range inside the file")
                    return self._error(416, "hawkbit.server.error.rangeNotSatisfiable")
                start, status = int(match.group(1)), 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            cut = server.cut_downloads.pop(0) if server.cut_downloads else None
            self.wfile.write(data[start:] if cut is None else data[start:start + cut])
            if cut is not None:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _error(self, status: int, code: str) -> None:
            self._send_json(status, {"exceptionClass": "org.eclipse.hawkbit.FakeServer", "errorCode": code,
                                     "message": code}, "exceptionInfo")

        def _send_json(self, status: int, document: Any, definition: str | None) -> None:
            if definition is not None:
                server.violations.extend(f"response to {self.command} {self.path}: {problem}"
                                         for problem in violations_of(definition, document))
            payload = b"" if document is None else json.dumps(document).encode()
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/hal+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
