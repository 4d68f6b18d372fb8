-- stats_segments: the SQL half of stats_tests for one scenario and metric: per segment, the moments of the
-- paired differences and the differences themselves (the Wilcoxon signed-rank test needs ranks, so
-- dpsim.stats gets the values; one scenario × metric at a time bounds memory to one value per sweep).
-- t, p-values, CI, Cohen's d and q-values are computed from these in Python (dpsim/stats.py).
-- Grain: one row per segment: overall, and each security, date, participant, time bucket, size bucket
-- and group of the scenario's sweeps, including segments without a single complete pair.
-- params: $scenario  VARCHAR  the scenario
--         $metric    VARCHAR  implementation_shortfall_bps | arrival_cost_bps | effective_spread_bps |
--                             fill_ratio | vw_exec_time_s
-- reads:  pairs (temp table from pairs.sql)
-- Columns:
--   segment_type    overall | security | date | participant | time_bucket | size_bucket | group
--   segment         the segment's value as text ('all' for overall; dates as YYYY-MM-DD; may be null)
--   n               complete pairs: the per-sweep delta (sim_orders.delta_<metric>) is known
--   n_excluded      sweeps of the segment left out because one side is null (e.g. no cost without fills)
--   n_nonzero       complete pairs with a non-zero delta (what the Wilcoxon test ranks)
--   mean_real       mean real value over the complete pairs
--   mean_sim        mean simulated value over the complete pairs
--   mean_diff       mean of diff = sim − real (|diff| < 1e-9 counts as 0, as in sim_orders)
--   sd_diff         sample standard deviation of diff (null when n < 2)
--   diffs           DOUBLE[]: diff of every complete pair (empty when n = 0)
WITH metric_pairs AS (
    SELECT
        security_code, date, participantid, time_bucket, size_bucket, "group",
        CASE $metric
            WHEN 'implementation_shortfall_bps' THEN implementation_shortfall_bps
            WHEN 'arrival_cost_bps'             THEN arrival_cost_bps
            WHEN 'effective_spread_bps'         THEN effective_spread_bps
            WHEN 'fill_ratio'                   THEN fill_ratio
            WHEN 'vw_exec_time_s'               THEN vw_exec_time_s
        END AS real,
        CASE $metric
            WHEN 'implementation_shortfall_bps' THEN sim_implementation_shortfall_bps
            WHEN 'arrival_cost_bps'             THEN sim_arrival_cost_bps
            WHEN 'effective_spread_bps'         THEN sim_effective_spread_bps
            WHEN 'fill_ratio'                   THEN sim_fill_ratio
            WHEN 'vw_exec_time_s'               THEN sim_vw_exec_time_s
        END AS sim,
        CASE $metric
            WHEN 'implementation_shortfall_bps' THEN delta_implementation_shortfall_bps
            WHEN 'arrival_cost_bps'             THEN delta_arrival_cost_bps
            WHEN 'effective_spread_bps'         THEN delta_effective_spread_bps
            WHEN 'fill_ratio'                   THEN delta_fill_ratio
            WHEN 'vw_exec_time_s'               THEN delta_vw_exec_time_s
        END AS diff
    FROM pairs
    WHERE scenario = $scenario
)
SELECT
    CASE
        WHEN GROUPING(security_code) = 0 THEN 'security'
        WHEN GROUPING(date) = 0          THEN 'date'
        WHEN GROUPING(participantid) = 0 THEN 'participant'
        WHEN GROUPING(time_bucket) = 0   THEN 'time_bucket'
        WHEN GROUPING(size_bucket) = 0   THEN 'size_bucket'
        WHEN GROUPING("group") = 0       THEN 'group'
        ELSE 'overall'
    END                                                AS segment_type,
    CASE
        WHEN GROUPING(security_code) = 0 THEN security_code::VARCHAR
        WHEN GROUPING(date) = 0          THEN strftime(date, '%Y-%m-%d')
        WHEN GROUPING(participantid) = 0 THEN participantid::VARCHAR
        WHEN GROUPING(time_bucket) = 0   THEN time_bucket
        WHEN GROUPING(size_bucket) = 0   THEN size_bucket
        WHEN GROUPING("group") = 0       THEN "group"
        ELSE 'all'
    END                                                AS segment,
    count(diff)                                        AS n,
    count(*) - count(diff)                             AS n_excluded,
    count(diff) FILTER (diff <> 0)                     AS n_nonzero,
    avg(real) FILTER (diff IS NOT NULL)                AS mean_real,
    avg(sim) FILTER (diff IS NOT NULL)                 AS mean_sim,
    avg(diff)                                          AS mean_diff,
    stddev_samp(diff)                                  AS sd_diff,
    coalesce(list(diff) FILTER (diff IS NOT NULL), []) AS diffs
FROM metric_pairs
GROUP BY GROUPING SETS ((), (security_code), (date), (participantid), (time_bucket), (size_bucket), ("group"))
ORDER BY
    GROUPING("group", size_bucket, time_bucket, participantid, date, security_code) DESC,  -- overall, security, …, group
    segment;
