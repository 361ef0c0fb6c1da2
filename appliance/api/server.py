"""uvicorn inside `orbox serve`: the API runs on a thread of the supervisor's process.

Same process as the supervisor, so the in-process clients (and their pipes to the workers) are
used directly; uvicorn installs no signal handlers off the main thread, so `orbox serve` keeps
its own SIGTERM handling and stops the server before the supervisor (every request's audit
record is written before the audit log closes).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from appliance.api.app import create_app
from appliance.api.keys import KeyStore
from appliance.api.settings import ApiSettings
from appliance.api.supervisor_api import SupervisorApi

log = logging.getLogger("orbox.api")


class ServerError(Exception):
    """The API cannot start (port taken, bad TLS files, ...)."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def check_listen(listen: Listen) -> None:
    """Refuse a half-configured or missing TLS pair before anything starts."""
    if bool(listen.tls_cert) != bool(listen.tls_key):
        raise ServerError("http.tls_cert and http.tls_key: give both or neither")
    for path in (listen.tls_cert, listen.tls_key):
        if path is not None and not Path(path).is_file():
            raise ServerError(f"{path}: TLS file not found (http.tls_cert / http.tls_key)")


class HttpServer:
    def __init__(self, supervisor: SupervisorApi, listen: Listen, keys: KeyStore, settings: ApiSettings):
        check_listen(listen)
        self.listen = listen
        self.app = create_app(supervisor, keys, settings)
        config = uvicorn.Config(self.app, host=listen.host, port=listen.port, log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                                ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
                                ssl_keyfile=str(listen.tls_key) if listen.tls_key else None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout_s: float = 30.0) -> Listen:
        """Start serving; returns where (the real port when 0 was asked for)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerError(f"cannot serve on {self.listen.host}:{self.listen.port} "
                                  "(address in use or not available; see the log above)")
            if time.monotonic() > deadline:
                raise ServerError(f"the HTTP server did not start within {timeout_s:.0f}s")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.listen = Listen(self.listen.host, port, self.listen.tls_cert, self.listen.tls_key)
        return self.listen

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("the HTTP server did not stop within %.0fs", timeout_s)
