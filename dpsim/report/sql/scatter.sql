-- scatter: real vs simulated implementation shortfall per sweep, a fixed sample for the scatter.
-- Grain: one row per sampled sweep with a delta: the $n sweeps of smallest hash(keys), so the same lake
-- gives the same sample and the page holds at most $n points whatever the lake's size.
-- params: $scenario  VARCHAR  the scenario
--         $n         INTEGER  sample size
-- reads:  sweeps, sim_orders
-- Columns: order_id (text: 19-digit ids do not survive a JavaScript number), security_code, date,
--          size_bucket, notional_aud (Q · arrival mid in dollars), real_is_bps, sim_is_bps
SELECT
    s.order_id::VARCHAR                         AS order_id,
    s.security_code,
    strftime(s.date, '%Y-%m-%d')                AS date,
    s.size_bucket,
    s.order_quantity * s.arrival_mid / 1000     AS notional_aud,
    s.implementation_shortfall_bps              AS real_is_bps,
    o.sim_implementation_shortfall_bps          AS sim_is_bps
FROM sweeps AS s
JOIN sim_orders AS o
    ON o.scenario = $scenario AND o.security_code = s.security_code AND o.date = s.date
   AND o.order_id = s.order_id
WHERE o.delta_implementation_shortfall_bps IS NOT NULL
ORDER BY hash(s.security_code, s.date, s.order_id), s.security_code, s.date, s.order_id
LIMIT $n;
