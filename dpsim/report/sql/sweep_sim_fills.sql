-- sweep_sim_fills: the replay's fills of the sweep in every scenario (role, contra, price).
-- Grain: one row per simulated fill.
-- params: $security_code BIGINT, $date DATE, $order_id BIGINT  the sweep
--         $tz  VARCHAR  exchange time zone
-- reads:  sim_fills
SELECT
    scenario,
    strftime(timezone($tz, timezone('UTC', make_timestamp(timestamp // 1000))), '%Y-%m-%d %H:%M:%S.%f') AS local_time,
    timestamp, role, contra_order_id::VARCHAR AS contra_order_id, contra_is_sweep, quantity, price, mid
FROM sim_fills
WHERE security_code = $security_code AND date = $date AND sweep_order_id = $order_id
ORDER BY scenario, timestamp, contra_order_id;
