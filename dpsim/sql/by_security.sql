-- by_security: real vs simulated execution of CP sweep orders, per scenario × security_code.
-- Grain: one row per scenario × security_code (a null segment value is a row of its own).
-- params: none
-- reads:  segment_measures (temp table from segment_measures.sql, merged from the partial aggregates)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   security_code                  security (orderbook) code
--   (then the measure columns of segment_measures.sql, in that order: n_sweeps … fidelity_mean)
SELECT
    scenario, security_code,
    * EXCLUDE (segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group")
FROM segment_measures
WHERE segment_type = 'security'
ORDER BY scenario, security_code;
