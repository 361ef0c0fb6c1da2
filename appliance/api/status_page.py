"""GET /status: the page OR staff glance at, its public summary JSON and the live MJPEG preview.

Everything is served from this package (no CDN, no web fonts): the box is offline by design.
The summary holds no patient data and no secrets, so the page works without an API key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from appliance.api.context import context_of

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


def summary(ctx: Any) -> dict[str, Any]:
    """What the page shows; public, so only state, never requests or keys."""
    from appliance.api.app import readiness

    status = ctx.supervisor.status()
    ok, problems = readiness(status)
    thermal, video = status["thermal"], status["video"]
    return {
        "profile": status["profile"], "uptime_s": status["uptime_s"], "ready": ok, "problems": problems,
        "workers": [{"name": w["name"], "state": w["state"], "restarts": w["restarts"]} for w in status["workers"]],
        "thermal": {"band": thermal.get("band") or "normal", "temperature_c": thermal.get("temperature_c"),
                    "sensors": thermal.get("sensors", {}), "admission_paused": thermal.get("admission_paused")},
        "models": [{"id": m.id, "role": m.role, "sha256": m.sha256, "quant_type": m.quant_type,
                    "ready": m.worker_state == "ready"} for m in ctx.models()],
        "dehaze": {"latency": video.get("latency"), "frames": video.get("frames"), "dropped": video.get("dropped"),
                   "smoke_level": video.get("smoke_level")},
        "llm": {"queue_depth": status["llm"]["queue_depth"], "admission_waiting": ctx.admission.waiting},
    }


@router.get("/status/summary", tags=["status"])
async def status_summary(request: Request) -> dict[str, Any]:
    """Public: the data behind the status page."""
    return summary(context_of(request))


async def _mjpeg(request: Request, ctx: Any) -> AsyncIterator[bytes]:
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
async def status_preview(request: Request) -> Response:
    """Public: the dehazed video as MJPEG (a few frames per second, encoded off the video cores)."""
    ctx = context_of(request)
    if ctx.supervisor.video.latest_jpeg() is None:
        return Response("no video frame yet", status_code=503, headers={"Retry-After": "1"})
    return StreamingResponse(_mjpeg(request, ctx), media_type=f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
                             headers={"Cache-Control": "no-cache"})
