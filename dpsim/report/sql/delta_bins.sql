-- delta_bins: histogram of the per-sweep delta of implementation shortfall (sim − real, bps), on a signed
-- logarithmic scale, so one pass over sim_orders serves any lake (no range to find first).
-- Grain: one row per scenario × bin holding a sweep with a delta. Bin 0: delta = 0 exactly (|δ| < 1e-9 is
-- stored as 0). Bin ±b (b = 1 … 25): sign(δ) · |δ| in (10^((b − 10) / 4), 10^((b − 9) / 4)] bps, quarter
-- decades from 0.01 to 10,000 bps; smaller and larger magnitudes are counted in bins ±1 and ±25.
-- params: $scenarios  VARCHAR[]  the scenarios shown
-- reads:  sim_orders (one row per reported sweep and scenario, docs/results.md)
-- Columns: scenario, bin, n_sweeps
WITH d AS (
    SELECT scenario, delta_implementation_shortfall_bps AS d
    FROM sim_orders
    WHERE list_contains($scenarios, scenario) AND delta_implementation_shortfall_bps IS NOT NULL
)
SELECT
    scenario,
    CASE WHEN d = 0 THEN 0
         ELSE sign(d)::INTEGER * (least(greatest(ceil(log10(abs(d)) * 4), -8), 16)::INTEGER + 9)
    END             AS bin,
    count(*)        AS n_sweeps
FROM d
GROUP BY scenario, bin
ORDER BY list_position($scenarios, scenario), bin;
