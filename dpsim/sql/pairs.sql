-- pairs: the base of every aggregate and of the statistics (a temporary table of the aggregation session).
-- Grain: one row per analysed sweep (results/sweeps) and scenario.
-- params: $scenarios  VARCHAR[]  scenarios to aggregate: those configured that have results/sim_orders
-- reads:  sweeps, sim_orders, replay_fidelity (views of lake/dpsim.duckdb)
-- Columns: the sweep's keys, segments and real metrics; its simulated metrics (sim_*), `set` and deltas
-- (delta_* = sim − real, from sim_orders) for the scenario; has_sim (false when the scenario has no
-- sim_orders row for the sweep: a missing partition result, counted as n_without_sim, never silently
-- dropped); the aggregation weights (docs/methodology.md, "Aggregation"):
--   w_fill   Σ q·p of the sweep's fills (= filled_quantity · vwap): arrival cost, price improvement
--   w_spread Σ q·p of the lit and dark fills behind effective_spread_bps
--   w_opp    unfilled quantity · arrival mid: opportunity cost
--   w_is     order quantity · arrival mid: implementation shortfall, real and simulated, and its delta
--   sim_w_fill, sim_w_spread   the same on the simulated path
-- and the partition's replay fidelity (reality replay; the same for every scenario).
-- Every sweep appears once per scenario, so real figures are identical across scenarios.
CREATE OR REPLACE TEMP TABLE pairs AS
WITH scenarios AS (
    SELECT unnest($scenarios::VARCHAR[]) AS scenario
),
sim AS (
    SELECT scenario, security_code, date, order_id, sim_quantity, sim_filled_quantity, sim_filled_resting,
           sim_filled_incoming, sim_fill_ratio, sim_vwap, sim_arrival_cost_bps,
           sim_implementation_shortfall_bps, sim_effective_spread_bps, sim_spread_notional,
           sim_vw_exec_time_s, "set",
           delta_implementation_shortfall_bps, delta_arrival_cost_bps, delta_effective_spread_bps,
           delta_fill_ratio, delta_vw_exec_time_s
    FROM sim_orders
    WHERE list_contains($scenarios::VARCHAR[], scenario)
)
SELECT
    sc.scenario,
    s.security_code,
    s.date,
    s.order_id,
    s.participantid,
    s."group",
    s.qualifying,
    s.size_bucket,
    s.time_bucket,
    s.order_quantity,
    s.filled_quantity,
    s.filled_lit,
    s.filled_dark,
    s.filled_auction,
    s.filled_reported,
    s.booking_quantity,
    s.arrival_mid,
    s.fill_ratio,
    s.arrival_cost_bps,
    s.opportunity_cost_bps,
    s.implementation_shortfall_bps,
    s.effective_spread_bps,
    s.price_improvement_bps,
    s.vw_exec_time_s,
    s.filled_quantity * s.vwap                                     AS w_fill,
    s.spread_notional                                              AS w_spread,
    s.unfilled_quantity * s.arrival_mid                            AS w_opp,
    s.order_quantity * s.arrival_mid                               AS w_is,
    o.order_id IS NOT NULL                                         AS has_sim,
    o.sim_quantity,
    o.sim_filled_quantity,
    o.sim_filled_resting,
    o.sim_filled_incoming,
    o.sim_fill_ratio,
    o.sim_arrival_cost_bps,
    o.sim_implementation_shortfall_bps,
    o.sim_effective_spread_bps,
    o.sim_vw_exec_time_s,
    o.sim_filled_quantity * o.sim_vwap                             AS sim_w_fill,
    o.sim_spread_notional                                          AS sim_w_spread,
    o."set",
    o.delta_implementation_shortfall_bps,
    o.delta_arrival_cost_bps,
    o.delta_effective_spread_bps,
    o.delta_fill_ratio,
    o.delta_vw_exec_time_s,
    f.fidelity,
    f.real_cp_quantity,
    f.reproduced_quantity
FROM sweeps AS s
CROSS JOIN scenarios AS sc
LEFT JOIN sim AS o
    ON  o.scenario = sc.scenario
    AND o.security_code = s.security_code
    AND o.date = s.date
    AND o.order_id = s.order_id
LEFT JOIN replay_fidelity AS f
    ON  f.security_code = s.security_code
    AND f.date = s.date;
