-- intraday: the intraday profile of cost and fill rate, by local arrival time.
-- Grain: one row per $minutes-minute bin of local arrival time (all dates together) holding a sweep.
-- Local time = UTC + the zone's offset at noon of the trading date (a trading day never spans a DST
-- change: they happen at night), so the time zone is looked up once per date, not once per sweep.
-- params: $scenario  VARCHAR  the scenario of the simulated figures
--         $tz        VARCHAR  the exchange time zone (config time.timezone)
--         $minutes   INTEGER  bin width in minutes
-- reads:  sweeps, sim_orders
-- Columns: t (HH:MM, the bin's start), n_sweeps, notional, real_is_bps and sim_is_bps (notional-weighted,
--          Q · arrival mid, over the sweeps with a delta, as in the headline), fill_ratio
--          (Σ filled / Σ Q), sim_fill_ratio (Σ simulated filled / Σ Q)
WITH offsets AS (
    SELECT date,
           (epoch(date + INTERVAL 12 HOUR) - epoch(timezone($tz, date + INTERVAL 12 HOUR)))::BIGINT AS offset_s
    FROM (SELECT DISTINCT date FROM sweeps)
),
s AS (
    SELECT
        ((s.arrival_time // 1000000000 + f.offset_s) % 86400) // (60 * $minutes) AS bin,
        s.order_quantity, s.filled_quantity, s.implementation_shortfall_bps AS real_is,
        s.order_quantity * s.arrival_mid AS w,
        o.sim_filled_quantity, o.sim_implementation_shortfall_bps AS sim_is,
        o.delta_implementation_shortfall_bps AS delta
    FROM sweeps AS s
    JOIN offsets AS f ON f.date = s.date
    LEFT JOIN sim_orders AS o
        ON o.scenario = $scenario AND o.security_code = s.security_code AND o.date = s.date
       AND o.order_id = s.order_id
)
SELECT
    lpad((bin * $minutes // 60)::VARCHAR, 2, '0') || ':' || lpad((bin * $minutes % 60)::VARCHAR, 2, '0') AS t,
    count(*)                                                                        AS n_sweeps,
    sum(w)                                                                          AS notional,
    sum(real_is * w) FILTER (delta IS NOT NULL) / nullif(sum(w) FILTER (delta IS NOT NULL), 0) AS real_is_bps,
    sum(sim_is * w) FILTER (delta IS NOT NULL) / nullif(sum(w) FILTER (delta IS NOT NULL), 0)  AS sim_is_bps,
    sum(filled_quantity) / nullif(sum(order_quantity), 0)                           AS fill_ratio,
    sum(sim_filled_quantity) / nullif(sum(order_quantity), 0)                       AS sim_fill_ratio
FROM s
GROUP BY bin
ORDER BY bin;
