"""Centre Point / sweep membership by bitmask (docs/methodology.md §4: never equality, never an int8 cast)."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim.config import Codes
from dpsim.errors import InputError
from dpsim.steps.select import SELECT, cp_events, has_flags

# type -> (is Centre Point, is sweep). 2050 = sweep + short sell, 4098 = block + short sell.
TYPES = {
    64: (True, False),
    256: (True, False),
    2048: (True, True),
    2050: (True, True),
    4096: (True, False),
    4098: (True, False),
    0: (False, False),
    2: (False, False),
    32: (False, False),
    1024: (False, False),
}


def test_centre_point_by_bitmask(make_events) -> None:
    big = 7904794000131579632  # a 19-digit id must come through exactly
    rows = [{"order_id": big + t, "timestamp": 1, "exchangeordertype": t} for t in TYPES]
    out = cp_events(make_events(rows), Codes()).collect()
    assert sorted(out["exchangeordertype"]) == sorted(t for t, (cp, _) in TYPES.items() if cp)
    assert set(out["order_id"]) == {big + t for t, (cp, _) in TYPES.items() if cp}
    assert out.schema["exchangeordertype"] == pl.Int64


def test_sweep_flag() -> None:
    df = pl.DataFrame({"t": list(TYPES)}, schema={"t": pl.Int64})
    got = df.select(has_flags("t", Codes().sweep_mask))["t"].to_list()
    assert got == [sweep for _, sweep in TYPES.values()]


def test_default_mask_is_the_four_cp_flags() -> None:
    assert Codes().centre_point_mask == 64 | 256 | 2048 | 4096 == 6464


def test_step_rejects_a_narrowed_type_column(make_events) -> None:
    # An int32/int8 exchangeordertype is the prototype's bug (2048 -> 0 in int8): refuse it by name.
    lf = make_events([{"order_id": 1, "timestamp": 1}]).with_columns(
        pl.col("exchangeordertype").cast(pl.Int32)
    )
    with pytest.raises(InputError, match=r"step 'select'.*exchangeordertype \(Int32, expected Int64\)"):
        SELECT(lf, Codes())
