"""One router per resource; `appliance.api.app.create_app` mounts every router in ROUTERS.

A new resource gets its own module here, its
request and response models in appliance.api.schemas, and one line in ROUTERS.
"""

from __future__ import annotations

from fastapi import APIRouter

from appliance.api.routes import embeddings, health, kb, llm, scenarios, status

ROUTERS: tuple[APIRouter, ...] = (llm.router, status.router, health.router, embeddings.router, kb.router,
                                  scenarios.router)
