"""Configs for tests that shred a drop into a temporary lake and process it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dpsim.config import Config, Run, Scenario


def drop_config(
    lake: str | Path, orders: str, trades: str, nbbo: str, scenarios: dict[str, Scenario], run: Run
) -> Config:
    """The default config with these inputs (no reference files), lake, scenarios and run settings."""
    base = Config()
    inputs = dataclasses.replace(
        base.inputs,
        orders=(orders,),
        trades=(trades,),
        nbbo=(nbbo,),
        reference=(),
        session=(),
        participants=(),
    )
    return dataclasses.replace(base, lake=str(lake), inputs=inputs, scenarios=scenarios, run=run)
