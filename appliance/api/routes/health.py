"""GET /health/live and /health/ready: public, for systemd, load balancers, bedside apps and the OR's monitoring.

Neither needs a key: a probe must not need a device's credentials. /health/ready answers with the
supervisor's one readiness verdict (appliance.readiness) as a reason class, never with free text.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from appliance.api.deps import Ctx
from appliance.api.schemas import HealthStatus

router = APIRouter(tags=["health"])
_RETRY_AFTER = {"Retry-After": {"description": "seconds before asking again", "schema": {"type": "integer"}}}


@router.get("/health/live", response_model_exclude_none=True)
async def live() -> HealthStatus:
    """The HTTP process answers."""
    return HealthStatus(status="live")


@router.get("/health/ready", response_model=HealthStatus,
            responses={503: {"model": HealthStatus, "description": "not ready", "headers": _RETRY_AFTER}})
async def ready(ctx: Ctx) -> JSONResponse:
    """200 when every worker the bundle and config call for is loaded and warmed up; 503 + Retry-After and the
    reason class (loading, worker_failed, worker_restarting, thermal_paused, shutting_down) otherwise."""
    verdict = ctx.supervisor.readiness()
    if verdict.ready:
        return JSONResponse(HealthStatus(status="ready").model_dump(exclude_none=True))
    body = HealthStatus(status="not_ready", reason=verdict.reason).model_dump(mode="json")
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(verdict.retry_after_s)})
