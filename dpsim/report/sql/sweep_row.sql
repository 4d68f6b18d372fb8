-- sweep_row: the sweep's row of results/sweeps (every real metric).
-- params: $security_code BIGINT, $date DATE, $order_id BIGINT  the sweep
-- reads:  sweeps
SELECT * FROM sweeps WHERE security_code = $security_code AND date = $date AND order_id = $order_id;
