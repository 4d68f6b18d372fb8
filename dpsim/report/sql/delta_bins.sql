-- delta_bins: histogram of the per-sweep delta of implementation shortfall (sim − real, bps).
-- Grain: one row per scenario × bin holding at least one sweep with a non-zero delta (the zeros, often most
-- sweeps, are counted by delta_summary.sql). The bins are shared by every scenario: $bins equal bins
-- between the 1st and 99th percentile of all the scenarios' non-zero deltas; sweeps outside that range
-- are counted in the first or last bin (so a long tail does not flatten the picture).
-- params: $scenarios  VARCHAR[]  the scenarios shown
--         $bins       INTEGER    number of bins
-- reads:  sweeps, sim_orders (the analysed sweeps reported, with a delta)
-- Columns: scenario, bin (0-based), bin_lo, bin_hi (bps), n_sweeps
WITH d AS (
    SELECT o.scenario, o.delta_implementation_shortfall_bps AS d
    FROM sim_orders AS o
    SEMI JOIN sweeps AS s
        ON s.security_code = o.security_code AND s.date = o.date AND s.order_id = o.order_id
    WHERE list_contains($scenarios, o.scenario) AND o.delta_implementation_shortfall_bps <> 0
),
r AS (
    SELECT
        coalesce(quantile_cont(d, 0.01), 0) AS lo,
        coalesce(nullif(quantile_cont(d, 0.99) - quantile_cont(d, 0.01), 0), 1) / $bins AS width
    FROM d
),
b AS (
    SELECT d.scenario, least(greatest(floor((d.d - r.lo) / r.width), 0), $bins - 1)::INTEGER AS bin
    FROM d, r
)
SELECT b.scenario, b.bin, r.lo + b.bin * r.width AS bin_lo, r.lo + (b.bin + 1) * r.width AS bin_hi,
       count(*) AS n_sweeps
FROM b, r
GROUP BY b.scenario, b.bin, r.lo, r.width
ORDER BY list_position($scenarios, b.scenario), b.bin;
