-- sweep_events: the sweep's order events, in the lifecycle's order (docs/methodology.md §5).
-- Grain: one row per event.
-- params: $security_code BIGINT, $date DATE, $order_id BIGINT  the sweep
--         $tz  VARCHAR  exchange time zone (local times)
-- reads:  orders
SELECT
    strftime(timezone($tz, timezone('UTC', make_timestamp(timestamp // 1000))), '%H:%M:%S.%f') AS local_time,
    timestamp, sequence, changereason, orderstatus, quantity, leavesquantity, totalmatchedquantity,
    price, side, exchangeordertype, midtick, minimumquantity, participantid
FROM orders
WHERE security_code = $security_code AND date = $date AND order_id = $order_id
ORDER BY timestamp, sequence, row_num;
