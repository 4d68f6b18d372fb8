-- by_order_size: real vs simulated execution of CP sweep orders, per scenario × order-size bucket.
-- Grain: one row per scenario × order-size bucket (a null segment value is a row of its own).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   size_bucket                    bucket of the arrival quantity (config buckets.size)
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario, size_bucket,
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'size_bucket'
ORDER BY scenario, size_bucket;
