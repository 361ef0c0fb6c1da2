"""GET /health/live and /health/ready: for load balancers, systemd and the OR's monitoring."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from appliance.api.deps import AuthedCaller, Ctx
from appliance.api.errors import unavailable
from appliance.api.readiness import readiness
from appliance.api.schemas import HealthStatus

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> HealthStatus:
    """Public: the HTTP process answers."""
    return HealthStatus(status="live")


@router.get("/health/ready", responses={200: {"model": HealthStatus}})
async def ready(ctx: Ctx, caller: AuthedCaller) -> Response:
    """Models loaded and warmed up; 503 + Retry-After otherwise."""
    ok, problems = readiness(ctx.supervisor.status())
    if not ok:
        return unavailable("not ready: " + "; ".join(problems), 5, code="not_ready").response()
    return JSONResponse(HealthStatus(status="ready").model_dump())
