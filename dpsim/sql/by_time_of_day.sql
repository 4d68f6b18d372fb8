-- by_time_of_day: real vs simulated execution of CP sweep orders, per scenario × time-of-day bucket.
-- Grain: one row per scenario × time-of-day bucket (a null segment value is a row of its own).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   time_bucket                    bucket of the local arrival time (config buckets.time_of_day)
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario, time_bucket,
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'time_bucket'
ORDER BY scenario, time_bucket;
