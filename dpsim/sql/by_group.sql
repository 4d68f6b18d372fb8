-- by_group: real vs simulated execution of CP sweep orders, per scenario × fill group.
-- Grain: one row per scenario × fill group (a null segment value is a row of its own).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   group                          full | partial | none (docs/methodology.md §5)
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario, "group",
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'group'
ORDER BY scenario, "group";
