-- global_summary: real vs simulated execution of CP sweep orders, per scenario.
-- Grain: one row per scenario (all sweeps of the lake).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario,
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'overall'
ORDER BY scenario;
