-- partial_stream: the per-sweep differences of one slice that the rank statistics need: the Wilcoxon
-- signed-rank test ranks |d| within each segment and the medians pick the middle d of each segment, so
-- neither merges from sums; they are computed from these rows in one sorted pass per scenario and metric
-- (stats_stream.sql). Zero differences are not kept (their count is in partial_moments: the Wilcoxon test
-- drops them and the medians know where they lie).
-- Grain: one row per scenario × analysed sweep with at least one non-null, non-zero difference.
-- params: none
-- reads:  pairs (temp table from pairs.sql, over the slice)
-- Columns:
--   scenario, date, security_code, participantid, time_bucket, size_bucket, "group"   the sweep's segments
--   delta_<m>   d = sim − real for m in the metrics of stats_tests (null when a side is null)
SELECT
    scenario,
    date,
    security_code,
    participantid,
    time_bucket,
    size_bucket,
    "group",
    delta_implementation_shortfall_bps,
    delta_arrival_cost_bps,
    delta_effective_spread_bps,
    delta_fill_ratio,
    delta_vw_exec_time_s
FROM pairs
WHERE delta_implementation_shortfall_bps <> 0
   OR delta_arrival_cost_bps <> 0
   OR delta_effective_spread_bps <> 0
   OR delta_fill_ratio <> 0
   OR delta_vw_exec_time_s <> 0;
