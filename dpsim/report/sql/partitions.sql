-- partitions: each selected partition's latest job that ran (not skipped), slowest first.
-- Grain: one row per partition; at most $limit rows. Failed partitions come first whatever their time.
-- params: $securities BIGINT[], $date_lo DATE, $date_hi DATE  the selection (nulls: everything)
--         $limit      INTEGER  rows shown
-- reads:  runs, jobs, replay_fidelity
WITH latest AS (
    SELECT
        j.partition,
        arg_max(j.status, r.started)              AS status,
        arg_max(j.seconds, r.started)             AS seconds,
        arg_max(j.rows_in, r.started)             AS rows_in,
        arg_max(j.sweeps, r.started)              AS sweeps,
        arg_max(j.worker_peak_rss_mb, r.started)  AS worker_peak_rss_mb,
        arg_max(j.error, r.started)               AS error
    FROM jobs AS j
    JOIN runs AS r ON r.run_id = j.run_id
    WHERE j.status <> 'skipped'
      AND ($securities::BIGINT[] IS NULL
           OR list_contains($securities::BIGINT[], split_part(j.partition, '/', 1)::BIGINT))
      AND ($date_lo::DATE IS NULL OR split_part(j.partition, '/', 2)::DATE >= $date_lo::DATE)
      AND ($date_hi::DATE IS NULL OR split_part(j.partition, '/', 2)::DATE <= $date_hi::DATE)
    GROUP BY j.partition
)
SELECT l.*, f.fidelity
FROM latest AS l
LEFT JOIN replay_fidelity AS f
    ON f.security_code = split_part(l.partition, '/', 1)::BIGINT
   AND f.date = split_part(l.partition, '/', 2)::DATE
ORDER BY l.status = 'failed' DESC, l.seconds DESC NULLS LAST, l.partition
LIMIT $limit;
