"""The FastAPI application: the routers of appliance.api.routes on one ApiContext, built on a Supervisor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from appliance.api.admission import AdmissionQueue
from appliance.api.deps import ApiContext
from appliance.api.errors import install_error_handlers
from appliance.api.keys import KeyStore
from appliance.api.metrics import ApiMetrics
from appliance.api.records import Recorder
from appliance.api.routes import ROUTERS
from appliance.api.settings import ApiSettings
from appliance.api.supervisor_api import SupervisorApi
from appliance.scenarios import drafting


def create_app(supervisor: SupervisorApi, keys: KeyStore, settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    admission = AdmissionQueue(settings.admission_slots, settings.max_waiting)
    metrics = ApiMetrics(supervisor.status, lambda: admission.waiting)
    recorder = Recorder(supervisor.audit, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        warming = asyncio.get_running_loop().run_in_executor(None, drafting.warm)  # while the models load
        yield
        await warming
        recorder.close()

    app = FastAPI(title="orbox", version="1", lifespan=lifespan,
                  description="The box's local OpenAI-compatible API. Every response names the artifact "
                              "(sha256) and hardware profile that produced it.")
    app.state.ctx = ApiContext(supervisor, keys, settings, recorder, admission)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
