-- sweep_trades: the sweep's trade rows with their fill class and the contra side of each execution.
-- Grain: one row per trade row of the sweep. Contras are the other rows of the same matchgroupid.
-- params: $security_code BIGINT, $date DATE, $order_id BIGINT  the sweep
--         $tz  VARCHAR  exchange time zone
--         $lit, $dark, $auction, $reported, $booking  BIGINT[]  codes.fill_classes
-- reads:  trades
WITH mine AS (
    SELECT * FROM trades
    WHERE security_code = $security_code AND date = $date AND order_id = $order_id
),
contra AS (
    SELECT c.matchgroupid,
           string_agg(DISTINCT c.order_id::VARCHAR, ' ')       AS contra_order_id,
           string_agg(DISTINCT c.participantid::VARCHAR, ' ')  AS contra_participant
    FROM trades AS c
    WHERE c.security_code = $security_code AND c.date = $date AND c.order_id <> $order_id
      AND c.matchgroupid IN (SELECT matchgroupid FROM mine)
    GROUP BY c.matchgroupid
)
SELECT
    strftime(timezone($tz, timezone('UTC', make_timestamp(m.timestamp // 1000))), '%Y-%m-%d %H:%M:%S.%f') AS local_time,
    m.timestamp,
    CASE
        WHEN list_contains($lit, m.dealsource) THEN 'lit'
        WHEN list_contains($dark, m.dealsource) THEN 'dark'
        WHEN list_contains($auction, m.dealsource) THEN 'auction'
        WHEN list_contains($reported, m.dealsource) THEN 'reported'
        WHEN list_contains($booking, m.dealsource) THEN 'booking'
    END                                   AS fill_class,
    m.dealsource, m.tradeprice AS price, m.quantity, m.matchgroupid,
    c.contra_order_id, c.contra_participant
FROM mine AS m
LEFT JOIN contra AS c ON c.matchgroupid = m.matchgroupid
ORDER BY m.timestamp, m.sequence, m.row_num;
