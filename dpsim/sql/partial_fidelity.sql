-- partial_fidelity: the reality-replay fidelity of the partitions behind each segment, over one slice of the
-- lake (scenario-free). Partitions never span slices, so slices merge by summing n_partitions and the
-- quantities and taking the least fidelity (segment_measures.sql).
-- Grain: one row per segment (the segment types of segment_measures.sql) holding sweeps in the slice.
-- params: none
-- reads:  sweeps, replay_fidelity (the slice's result files, or the catalog views)
-- Columns:
--   segment_type, security_code, date, participantid, time_bucket, size_bucket, "group"   the segment
--   n_partitions         distinct (security_code, date) partitions holding the segment's sweeps
--   fidelity_min         the lowest partition fidelity among them
--   reproduced_quantity  Σ reproduced_quantity over them
--   real_cp_quantity     Σ real_cp_quantity over them
WITH segment_partitions AS (
    SELECT DISTINCT 'overall' AS segment_type, NULL::BIGINT AS security_code, NULL::DATE AS date,
           NULL::BIGINT AS participantid, NULL::VARCHAR AS time_bucket, NULL::VARCHAR AS size_bucket,
           NULL::VARCHAR AS "group", security_code AS p_security, date AS p_date FROM sweeps
    UNION ALL
    SELECT DISTINCT 'security', security_code, NULL, NULL, NULL, NULL, NULL, security_code, date FROM sweeps
    UNION ALL
    SELECT DISTINCT 'date', NULL, date, NULL, NULL, NULL, NULL, security_code, date FROM sweeps
    UNION ALL
    SELECT DISTINCT 'participant', NULL, NULL, participantid, NULL, NULL, NULL, security_code, date FROM sweeps
    UNION ALL
    SELECT DISTINCT 'time_bucket', NULL, NULL, NULL, time_bucket, NULL, NULL, security_code, date FROM sweeps
    UNION ALL
    SELECT DISTINCT 'size_bucket', NULL, NULL, NULL, NULL, size_bucket, NULL, security_code, date FROM sweeps
    UNION ALL
    SELECT DISTINCT 'group', NULL, NULL, NULL, NULL, NULL, "group", security_code, date FROM sweeps
)
SELECT
    p.segment_type, p.security_code, p.date, p.participantid, p.time_bucket, p.size_bucket, p."group",
    count(*)                                  AS n_partitions,
    min(f.fidelity)                           AS fidelity_min,
    sum(f.reproduced_quantity)::BIGINT        AS reproduced_quantity,
    sum(f.real_cp_quantity)::BIGINT           AS real_cp_quantity
FROM segment_partitions AS p
LEFT JOIN replay_fidelity AS f ON f.security_code = p.p_security AND f.date = p.p_date
GROUP BY ALL;
