"""Whether the box can serve: read by /health/ready and by the status page."""

from __future__ import annotations

from typing import Any


def readiness(status: dict[str, Any]) -> tuple[bool, list[str]]:
    """Ready = the supervisor finished starting and every configured model worker is loaded and warmed up."""
    problems = [] if status["ready"] else ["the supervisor is still starting its workers"]
    for entry in status["workers"]:
        if entry["state"] != "ready":
            problems.append(f"{entry['name']} worker is {entry['state']}"
                            + (f" ({entry['detail']})" if entry.get("detail") else ""))
    return not problems, problems
