-- sweep_sim_orders: the sweep's row of results/sim_orders in every scenario (what rested, its window,
-- the simulated path's metrics, the deltas).
-- Grain: one row per scenario.
-- params: $security_code BIGINT, $date DATE, $order_id BIGINT  the sweep
-- reads:  sim_orders
SELECT * FROM sim_orders
WHERE security_code = $security_code AND date = $date AND order_id = $order_id
ORDER BY scenario;
