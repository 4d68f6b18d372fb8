-- runs: the latest process runs and their jobs by status (over the selected partitions).
-- Grain: one row per run, latest first; at most $limit rows.
-- params: $securities BIGINT[], $date_lo DATE, $date_hi DATE  the selection (nulls: everything)
--         $limit      INTEGER  rows shown
-- reads:  runs, jobs (catalog views over lake/_runs/*.json)
WITH j AS (
    SELECT run_id, status
    FROM jobs
    WHERE ($securities::BIGINT[] IS NULL
           OR list_contains($securities::BIGINT[], split_part(partition, '/', 1)::BIGINT))
      AND ($date_lo::DATE IS NULL OR split_part(partition, '/', 2)::DATE >= $date_lo::DATE)
      AND ($date_hi::DATE IS NULL OR split_part(partition, '/', 2)::DATE <= $date_hi::DATE)
)
SELECT
    r.run_id,
    strftime(r.started, '%Y-%m-%d %H:%M:%S')      AS started,
    r.seconds,
    count(j.status) FILTER (j.status = 'ok')      AS ok,
    count(j.status) FILTER (j.status = 'failed')  AS failed,
    count(j.status) FILTER (j.status = 'skipped') AS skipped
FROM runs AS r
LEFT JOIN j ON j.run_id = r.run_id
GROUP BY r.run_id, r.started, r.seconds
ORDER BY r.started DESC, r.run_id DESC
LIMIT $limit;
