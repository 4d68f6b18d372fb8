-- bootstrap_units: the clusters of the headline's bootstrap for one scenario, with their sufficient sums.
-- Grain: one row per cluster: a (security_code, date) partition holding >= 1 sweep with a non-null
--        delta_implementation_shortfall_bps (unit 'partition'), or such a sweep (unit 'sweep').
-- params: $scenario  VARCHAR  the scenario
--         $unit      VARCHAR  partition | sweep
-- reads:  pairs (temp table from pairs.sql)
-- Columns (in a fixed order, so the seeded resampling is deterministic):
--   w    Σ Q · arrival mid of the cluster's sweeps with a delta (the notional weight)
--   wd   Σ Q · arrival mid · delta_implementation_shortfall_bps over the same sweeps
SELECT
    sum(w_is)                                        AS w,
    sum(w_is * delta_implementation_shortfall_bps)   AS wd
FROM pairs
WHERE scenario = $scenario AND delta_implementation_shortfall_bps IS NOT NULL
GROUP BY security_code, date, CASE WHEN $unit = 'sweep' THEN order_id END
ORDER BY security_code, date, CASE WHEN $unit = 'sweep' THEN order_id END;
