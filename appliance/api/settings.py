"""The API's own settings, taken from the site config's [http] section by `orbox serve`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiSettings:
    deadline_s: float = 120.0  # per-request deadline unless the client asks for less
    admission_slots: int = 1  # requests generating at once (the LLM worker's parallel sequences)
    max_waiting: int = 32  # admission queue length before 503
    preview_fps: float = 5.0
