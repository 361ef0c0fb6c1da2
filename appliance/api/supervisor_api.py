"""What the HTTP layer may use of the supervisor: the routes depend on this, not on the Supervisor class.

`appliance.supervisor.Supervisor` satisfies it; the API runs in the supervisor's process, so the
clients below talk to the workers over their pipes directly (see appliance.protocol).
"""

from __future__ import annotations

from typing import Any, Protocol

from appliance.audit import AuditLog
from appliance.clients import EncoderClient, LlmClient, VideoClient
from appliance.knowledge_bases import KbRegistry
from appliance.readiness import Readiness
from hw_profiles import Profile


class SupervisorApi(Protocol):
    profile: Profile
    bundle_dir: str  # the model bundle the workers serve
    audit: AuditLog
    llm: LlmClient
    encoder: EncoderClient
    video: VideoClient
    kbs: KbRegistry

    def readiness(self) -> Readiness:
        """Ready, or the reason class; status()["ready"] holds the same verdict."""
        ...

    def status(self) -> dict[str, Any]:
        """The same shape as status.json: {"workers": [...], "thermal", "watchdog", "llm", "video", ...}."""
        ...
