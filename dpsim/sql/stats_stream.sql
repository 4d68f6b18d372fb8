-- stats_stream: the non-zero differences of one scenario and metric in ascending |d|, the one order from
-- which dpsim.ranks takes, for every segment at once, the Wilcoxon signed-rank sum (average ranks of |d|
-- within the segment, the tie correction) and the medians of d. DuckDB sorts with its memory limit and
-- spills to its temp folder, so the pass needs no more memory than a batch and a few numbers per segment.
-- Grain: one row per sweep of the scenario whose difference in the metric is known and non-zero.
-- params: {source}   (formatted in) the differences, partial_stream.sql rows of every slice: the stored
--                    files, read_parquet($files::VARCHAR[]), or a session's table of them
--         $scenario  VARCHAR  the scenario
--         $metric    VARCHAR  the metric (implementation_shortfall_bps | arrival_cost_bps | …)
-- reads:  {source}
-- Columns:
--   a                |d| (NaN last, as DuckDB orders it)
--   negative         d < 0
--   security_code, date, participantid, time_bucket, size_bucket, "group"   the sweep's segments
WITH d AS (
    SELECT
        CASE $metric
            WHEN 'implementation_shortfall_bps' THEN delta_implementation_shortfall_bps
            WHEN 'arrival_cost_bps'             THEN delta_arrival_cost_bps
            WHEN 'effective_spread_bps'         THEN delta_effective_spread_bps
            WHEN 'fill_ratio'                   THEN delta_fill_ratio
            WHEN 'vw_exec_time_s'               THEN delta_vw_exec_time_s
        END AS d,
        security_code, date, participantid, time_bucket, size_bucket, "group"
    FROM {source}
    WHERE scenario = $scenario
)
SELECT abs(d) AS a, d < 0 AS negative, security_code, date, participantid, time_bucket, size_bucket, "group"
FROM d
WHERE d <> 0
ORDER BY a;
