-- rejects: rows the shred quarantined, by reason per source.
-- Grain: one row per kind × source × reason, most rejected first; at most $limit rows.
-- params: $limit  INTEGER  rows shown
-- reads:  rejects (catalog view; an empty stand-in when nothing was rejected)
SELECT kind, source, reason, count(*) AS n_rows, min(line) AS first_line
FROM rejects
GROUP BY kind, source, reason
ORDER BY n_rows DESC, kind, source, reason
LIMIT $limit;
