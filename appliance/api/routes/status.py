"""The box's state: the status page OR staff glance at (public), /api/status and /metrics (with a key).

GET /status, its public summary JSON and the live MJPEG preview are served from this package
(no CDN, no web fonts): the box is offline by design. The summary holds no patient data and no
secrets, so the page works without an API key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from appliance.api.deps import ApiContext, AuthedCaller, Ctx
from appliance.api.records import RequestRecord

router = APIRouter()
_STATIC = {"status.js": "text/javascript; charset=utf-8", "status.css": "text/css; charset=utf-8"}
_BOUNDARY = "orboxframe"


def _asset(name: str) -> bytes:
    return resources.files("appliance.api").joinpath("static", name).read_bytes()


@router.get("/status", response_class=HTMLResponse, tags=["status"])
async def status_html() -> HTMLResponse:
    """Public: the status page (health, temperature, band, models, dehaze latency, live preview)."""
    return HTMLResponse(_asset("status.html"), headers={"Cache-Control": "no-cache"})


@router.get("/status/static/{name}", include_in_schema=False)
async def status_static(name: str) -> Response:
    if name not in _STATIC:
        return Response(status_code=404)
    return Response(_asset(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


def summary(ctx: ApiContext) -> dict[str, Any]:
    """What the page shows; public, so only state, never requests or keys."""
    status = ctx.supervisor.status()
    thermal, video = status["thermal"], status["video"]
    return {
        "profile": status["profile"], "uptime_s": status["uptime_s"], "ready": status["ready"],
        "problems": status["readiness"]["problems"],
        "workers": [{"name": w["name"], "state": w["state"], "restarts": w["restarts"]} for w in status["workers"]],
        "thermal": {"band": thermal["band"] or ("normal" if thermal["managed"] else "unmanaged"),
                    "unmanaged": thermal["unmanaged"], "temperature_c": thermal.get("temperature_c"),
                    "sensors": thermal.get("sensors", {}), "admission_paused": thermal.get("admission_paused")},
        "models": [{"id": m.id, "role": m.role, "sha256": m.sha256, "quant_type": m.quant_type,
                    "ready": m.worker_state == "ready"} for m in ctx.models()],
        "dehaze": {"latency": video.get("latency"), "frames": video.get("frames"), "dropped": video.get("dropped"),
                   "smoke_level": video.get("smoke_level")},
        "llm": {"queue_depth": status["llm"]["queue_depth"], "admission_waiting": ctx.admission.waiting},
    }


@router.get("/status/summary", tags=["status"])
async def status_summary(ctx: Ctx) -> dict[str, Any]:
    """Public: the data behind the status page."""
    return summary(ctx)


async def _mjpeg(request: Request, ctx: ApiContext) -> AsyncIterator[bytes]:
    interval = 1.0 / ctx.settings.preview_fps
    last: bytes | None = None
    while not await request.is_disconnected():
        jpeg = await asyncio.to_thread(ctx.supervisor.video.latest_jpeg)
        if jpeg is not None and jpeg is not last:
            last = jpeg
            yield (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                   + jpeg + b"\r\n")
        await asyncio.sleep(interval)


@router.get("/status/preview.mjpeg", include_in_schema=False)  # endless by design
async def status_preview(request: Request, ctx: Ctx) -> Response:
    """Public: the dehazed video as MJPEG (a few frames per second, encoded off the video cores)."""
    if ctx.supervisor.video.latest_jpeg() is None:
        return Response("no video frame yet", status_code=503, headers={"Retry-After": "1"})
    return StreamingResponse(_mjpeg(request, ctx), media_type=f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
                             headers={"Cache-Control": "no-cache"})


@router.get("/metrics", tags=["ops"])
async def prometheus(ctx: Ctx, caller: AuthedCaller) -> Response:
    """Prometheus text format."""
    return Response(ctx.recorder.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/api/status", tags=["ops"])
async def api_status(ctx: Ctx, caller: AuthedCaller) -> dict[str, Any]:
    """The supervisor's full status as JSON."""
    status = ctx.supervisor.status()
    ctx.recorder.finish(RequestRecord("/api/status", caller.name), 200)
    api = {"admission_waiting": ctx.admission.waiting, "admission_running": ctx.admission.running}
    return {**status, "api": api}
