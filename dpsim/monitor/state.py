"""The state of a lake's sessions as status and monitor show it: the recent runs, newest first, each
summarised from its manifest (`live.summarise`); nothing but what the runs wrote is read."""

from __future__ import annotations

from typing import Any

from dpsim.lake import Lake
from dpsim.lake.manifests import recent_sessions
from dpsim.live import now_iso, summarise


def lake_state(lake: Lake, limit: int = 10) -> dict[str, Any]:
    """{lake, read (when), runs: [summary, …] newest first, running: how many are running now}."""
    runs = [summarise(body) for body in recent_sessions(lake, limit)]
    return {
        "lake": str(lake.root),
        "read": now_iso(),
        "running": sum(r["state"] == "running" for r in runs),
        "runs": runs,
    }
