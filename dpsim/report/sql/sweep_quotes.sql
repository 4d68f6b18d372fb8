-- sweep_quotes: the usable NBBO quotes over the sweep's life (both sides > 0, bid < offer), starting with
-- the one prevailing at $t0, for the mid line of the drill-down. Among quotes sharing a nanosecond the
-- highest sequence stands for it (docs/methodology.md §3).
-- Grain: one row per quote, in time order.
-- params: $security_code BIGINT, $date DATE  the partition
--         $t0, $t1  BIGINT  ns UTC: from the quote in force at t0 to the last at or before t1
--         $tz       VARCHAR exchange time zone
-- reads:  nbbo
WITH usable AS (
    SELECT timestamp, sequence, bid, offer
    FROM nbbo
    WHERE security_code = $security_code AND date = $date AND bid > 0 AND offer > 0 AND bid < offer
      AND timestamp <= $t1
    QUALIFY row_number() OVER (PARTITION BY timestamp ORDER BY sequence DESC) = 1
)
SELECT
    strftime(timezone($tz, timezone('UTC', make_timestamp(timestamp // 1000))), '%Y-%m-%d %H:%M:%S.%f') AS local_time,
    timestamp, bid, offer, (bid + offer) / 2 AS mid
FROM usable
WHERE timestamp >= coalesce((SELECT max(timestamp) FROM usable WHERE timestamp <= $t0), $t0)
ORDER BY timestamp, sequence;
