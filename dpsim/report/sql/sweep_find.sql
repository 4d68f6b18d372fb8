-- sweep_find: the partitions holding an analysed sweep with this order id (normally one).
-- Grain: one row per (security_code, date).
-- params: $order_id   BIGINT    the sweep's order id
--         $securities BIGINT[], $date_lo DATE, $date_hi DATE  the selection (nulls: everything)
-- reads:  sweeps
SELECT security_code, date
FROM sweeps
WHERE order_id = $order_id
  AND ($securities::BIGINT[] IS NULL OR list_contains($securities::BIGINT[], security_code))
  AND ($date_lo::DATE IS NULL OR date >= $date_lo::DATE)
  AND ($date_hi::DATE IS NULL OR date <= $date_hi::DATE)
ORDER BY security_code, date;
