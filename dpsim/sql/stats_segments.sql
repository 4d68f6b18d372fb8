-- stats_segments: the SQL half of stats_tests for one scenario: per metric and segment, the moments of the
-- paired differences and the differences themselves (the Wilcoxon signed-rank test needs ranks, so
-- dpsim.stats gets the values; one scenario at a time bounds memory to one value per sweep and metric).
-- t, p-values, CI, Cohen's d and q-values are computed from these in Python (dpsim/stats.py).
-- Grain: one row per metric and segment: overall, and each security, date, participant, time bucket, size
-- bucket and group of the scenario's sweeps, including segments without a single complete pair.
-- params: $scenario  VARCHAR  the scenario
-- Metrics: implementation_shortfall_bps | arrival_cost_bps | effective_spread_bps | fill_ratio | vw_exec_time_s
-- reads:  pairs (temp table from pairs.sql)
-- Columns:
--   metric          the compared metric (rows sorted by it, then by segment)
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
    SELECT security_code, date, participantid, time_bucket, size_bucket, "group", metric, real, sim, diff
    FROM pairs,
    LATERAL (VALUES
        ('implementation_shortfall_bps', implementation_shortfall_bps, sim_implementation_shortfall_bps,
         delta_implementation_shortfall_bps),
        ('arrival_cost_bps', arrival_cost_bps, sim_arrival_cost_bps, delta_arrival_cost_bps),
        ('effective_spread_bps', effective_spread_bps, sim_effective_spread_bps, delta_effective_spread_bps),
        ('fill_ratio', fill_ratio, sim_fill_ratio, delta_fill_ratio),
        ('vw_exec_time_s', vw_exec_time_s, sim_vw_exec_time_s, delta_vw_exec_time_s)
    ) AS m(metric, real, sim, diff)
    WHERE scenario = $scenario
)
SELECT
    metric,
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
GROUP BY GROUPING SETS (
    (metric), (metric, security_code), (metric, date), (metric, participantid), (metric, time_bucket),
    (metric, size_bucket), (metric, "group")
)
ORDER BY
    metric,
    GROUPING("group", size_bucket, time_bucket, participantid, date, security_code) DESC,  -- overall, security, …, group
    segment;
