-- by_participant: real vs simulated execution of CP sweep orders, per scenario × participantid.
-- Grain: one row per scenario × participantid (a null segment value is a row of its own).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   participantid                  participant of the sweep's arrival event
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario, participantid,
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'participant'
ORDER BY scenario, participantid;
