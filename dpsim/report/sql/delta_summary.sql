-- delta_summary: how the per-sweep deltas of implementation shortfall (sim − real, bps) spread.
-- Grain: one row per scenario shown.
-- params: $scenarios  VARCHAR[]  the scenarios shown, in order
-- reads:  sweeps, sim_orders
-- Columns: scenario; n (sweeps with a delta); n_cheaper (delta < 0: resting would have cost less),
--          n_same (delta = 0), n_dearer (delta > 0); p05, median, p95 of the delta (unweighted)
SELECT
    o.scenario,
    count(o.delta_implementation_shortfall_bps)                              AS n,
    count(*) FILTER (o.delta_implementation_shortfall_bps < 0)               AS n_cheaper,
    count(*) FILTER (o.delta_implementation_shortfall_bps = 0)               AS n_same,
    count(*) FILTER (o.delta_implementation_shortfall_bps > 0)               AS n_dearer,
    quantile_cont(o.delta_implementation_shortfall_bps, 0.05)                AS p05,
    median(o.delta_implementation_shortfall_bps)                             AS median,
    quantile_cont(o.delta_implementation_shortfall_bps, 0.95)                AS p95
FROM sim_orders AS o
SEMI JOIN sweeps AS s
    ON s.security_code = o.security_code AND s.date = o.date AND s.order_id = o.order_id
WHERE list_contains($scenarios, o.scenario)
GROUP BY o.scenario
ORDER BY list_position($scenarios, o.scenario);
