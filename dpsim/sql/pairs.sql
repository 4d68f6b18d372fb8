-- pairs: the base of every aggregate and of the statistics (a temporary table of the aggregation session).
-- Grain: one row per analysed sweep (results/sweeps) and scenario.
-- params: $scenarios  VARCHAR[]  scenarios to aggregate: those configured that have results/sim_orders
-- reads:  sweeps, sim_orders (views of lake/dpsim.duckdb)
-- Columns: the sweep's keys, segments and real metrics; its simulated metrics (sim_*) and `set` for the
-- scenario; has_sim (false when the scenario has no sim_orders row for the sweep: a missing partition
-- result, counted as n_without_sim, never silently dropped); delta_* = sim − real, null unless both sides
-- are known (the same definition as sim_orders.delta_*).
-- Every sweep appears once per scenario, so real figures are identical across scenarios.
-- The scenario filter prunes the hive partitions of sim_orders (scenario=<name>/ folders).
CREATE OR REPLACE TEMP TABLE pairs AS
WITH scenarios AS (
    SELECT unnest($scenarios::VARCHAR[]) AS scenario
),
sim AS (
    SELECT scenario, security_code, date, order_id, sim_quantity, sim_filled_quantity, sim_fill_ratio,
           sim_arrival_cost_bps, sim_vw_exec_time_s, "set"
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
    s.arrival_quantity,
    s.filled_quantity,
    s.filled_dark,
    s.filled_lit,
    s.fill_ratio,
    s.arrival_cost_bps,
    s.vw_exec_time_s,
    o.order_id IS NOT NULL                                        AS has_sim,
    o.sim_quantity,
    o.sim_filled_quantity,
    o.sim_fill_ratio,
    o.sim_arrival_cost_bps,
    o.sim_vw_exec_time_s,
    o."set",
    o.sim_arrival_cost_bps - s.arrival_cost_bps                   AS delta_arrival_cost_bps,
    (o.sim_filled_quantity - s.filled_quantity)::DOUBLE           AS delta_filled_quantity,
    o.sim_fill_ratio - s.fill_ratio                               AS delta_fill_ratio,
    o.sim_vw_exec_time_s - s.vw_exec_time_s                       AS delta_vw_exec_time_s
FROM sweeps AS s
CROSS JOIN scenarios AS sc
LEFT JOIN sim AS o
    ON  o.scenario = sc.scenario
    AND o.security_code = s.security_code
    AND o.date = s.date
    AND o.order_id = s.order_id;
