"""An independent, deliberately simple plain-Python reference of the the methodology per-partition computations.

It exists only to check the fast implementation (dpsim.partition) against a second reading of the
specification (docs/methodology.md, which states every rule and every settled choice). It imports no dpsim code
that computes results.
"""

from __future__ import annotations

from .domain_v2 import Params, Scenario, default_scenarios, reference_partition

__all__ = ["Params", "Scenario", "default_scenarios", "reference_partition"]
