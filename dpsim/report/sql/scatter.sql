-- scatter: real vs simulated implementation shortfall per sweep, a fixed sample for the scatter.
-- Grain: one row per sampled sweep with a delta: the $n sweeps of smallest hash(keys), so the same lake
-- gives the same sample and the page holds at most $n points whatever the lake's size. The sample is
-- drawn from sim_orders first (a top-n, constant memory) and only those sweeps are looked up.
-- params: $scenario  VARCHAR  the scenario
--         $n         INTEGER  sample size
-- reads:  sweeps, sim_orders
-- Columns: order_id (text: 19-digit ids do not survive a JavaScript number), security_code, date,
--          size_bucket, notional_aud (Q · arrival mid in dollars), real_is_bps, sim_is_bps
WITH sample AS (
    SELECT security_code, date, order_id, sim_implementation_shortfall_bps
    FROM sim_orders
    WHERE scenario = $scenario AND delta_implementation_shortfall_bps IS NOT NULL
    ORDER BY hash(security_code, date, order_id), security_code, date, order_id
    LIMIT $n
)
SELECT
    s.order_id::VARCHAR                         AS order_id,
    s.security_code,
    strftime(s.date, '%Y-%m-%d')                AS date,
    s.size_bucket,
    s.order_quantity * s.arrival_mid / 1000     AS notional_aud,
    s.implementation_shortfall_bps              AS real_is_bps,
    o.sim_implementation_shortfall_bps          AS sim_is_bps
FROM sample AS o
JOIN sweeps AS s
    ON s.security_code = o.security_code AND s.date = o.date AND s.order_id = o.order_id
ORDER BY hash(s.security_code, s.date, s.order_id), s.security_code, s.date, s.order_id;
