"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}` with the right status.

Every failure the API reports goes through `ApiError`, so any OpenAI client raises its matching
exception class (401 AuthenticationError, 400 BadRequestError, 503 InternalServerError, ...).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.api.admission import QueueFull, QueueTimeout
from appliance.clients import Unavailable
from appliance.protocol import RequestFailed

_TYPE_OF_STATUS = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
                   405: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
                   503: "service_unavailable", 504: "timeout_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 error_type: str | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = error_type or _TYPE_OF_STATUS.get(status, "server_error")
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s)))} if self.retry_after_s is not None else {}

    def response(self, extra_headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers={**self.headers(), **(extra_headers or {})})


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key", error_type="authentication_error")


def unavailable(message: str, retry_after_s: float, code: str = "unavailable") -> ApiError:
    return ApiError(503, message, code=code, retry_after_s=retry_after_s)


_STATUS_OF_WORKER_CODE = {"context_length_exceeded": 400, "invalid_request": 400, "worker_lost": 503,
                   "worker_unavailable": 503, "worker_stopping": 503, "deadline_exceeded": 504}

def worker_error(event: RequestFailed) -> ApiError:
    code = event.code
    status = _STATUS_OF_WORKER_CODE.get(code, 500)
    return ApiError(status, event.message, code=code,
                    param="messages" if code == "context_length_exceeded" else None,
                    retry_after_s=5 if status == 503 else None)


def admission_error(exc: QueueFull | Unavailable | QueueTimeout) -> ApiError:
    """Why a request was not admitted: 503 with Retry-After, or 504 when its deadline passed in the queue."""
    if isinstance(exc, Unavailable):
        return unavailable(str(exc), exc.retry_after_s)
    if isinstance(exc, QueueFull):
        return unavailable(str(exc), 2, code="queue_full")
    return ApiError(504, str(exc), code="deadline_exceeded")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    problems, first_param = [], None
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        param = ".".join(loc) or None
        first_param = first_param or param
        found = error.get("input")
        shown = repr(found) if not isinstance(found, dict | list) else type(found).__name__
        problems.append(f"{param or 'body'}: {error.get('msg')} (found {shown[:80]})")
    return "; ".join(problems), first_param


def install_error_handlers(app: FastAPI) -> None:
    """Route FastAPI's own 404/405/422 through the OpenAI shape as well."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return ApiError(400, message, code="invalid_request", param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail), code=None).response(dict(exc.headers or {}))
