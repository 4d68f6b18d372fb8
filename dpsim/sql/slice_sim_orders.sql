-- slice_sim_orders: the columns of results/sim_orders that pairs.sql reads, from one slice's files.
-- Grain: one row per analysed sweep and scenario of the files.
-- params: $files      VARCHAR[]  the slice's results/sim_orders files (security_code and date from their hive
--                               path; every scenario of a partition in its file, in the scenario column)
--         $scenarios  VARCHAR[]  the scenarios aggregated
-- reads:  the files
-- Columns: scenario, security_code, date, then the columns of results/sim_orders that pairs.sql uses
SELECT
    scenario, security_code, date, order_id, sim_quantity, sim_filled_quantity, sim_filled_resting,
    sim_filled_incoming, sim_fill_ratio, sim_vwap, sim_arrival_cost_bps, sim_implementation_shortfall_bps,
    sim_effective_spread_bps, sim_spread_notional, sim_vw_exec_time_s, "set",
    delta_implementation_shortfall_bps, delta_arrival_cost_bps, delta_effective_spread_bps, delta_fill_ratio,
    delta_vw_exec_time_s
FROM read_parquet($files::VARCHAR[], hive_partitioning = true,
                  hive_types = {'security_code': BIGINT, 'date': DATE})
WHERE list_contains($scenarios::VARCHAR[], scenario);
