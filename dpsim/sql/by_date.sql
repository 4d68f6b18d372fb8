-- by_date: real vs simulated execution of CP sweep orders, per scenario × trading date.
-- Grain: one row per scenario × trading date (a null segment value is a row of its own).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   date                           exchange-local trading date (docs/methodology.md §1)
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario, date,
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'date'
ORDER BY scenario, date;
