-- partial_moments: the sufficient statistics of the paired tests over the pairs of one slice of the lake, per
-- scenario, metric and segment: counts, sums of the real and simulated values, and the mean and sum of
-- squared deviations (M2) of the differences d = sim − real. Slices merge exactly: counts and sums add, and
-- the M2 of a union is Σ M2_i + Σ n_i (mean_i − mean)² (Chan, Golub & LeVeque 1979), which never subtracts
-- two large sums, so merging loses no precision (stats_moments.sql).
-- Grain: one row per scenario × metric × segment (the GROUPING SETS of stats_tests) present in the slice.
-- params: none
-- reads:  pairs (temp table from pairs.sql, over the slice)
-- Metrics: implementation_shortfall_bps | arrival_cost_bps | effective_spread_bps | fill_ratio | vw_exec_time_s
-- Columns:
--   segment_type, scenario, metric, security_code, date, participantid, time_bucket, size_bucket, "group"
--   n, n_excluded, n_nonzero   complete pairs, sweeps left out (a side null), pairs with d <> 0
--   n_negative                 pairs with d < 0 (the medians of d are picked from the |d| order with it)
--   n_nan                      pairs whose d is NaN (the Wilcoxon p-value is then NaN, as scipy's)
--   n_real, sum_real, n_sim, sum_sim   count and sum of the real / simulated values of the complete pairs
--   mean_diff, m2_diff         mean of d and Σ (d − mean)² (null when n = 0)
WITH metric_pairs AS (
    SELECT scenario, security_code, date, participantid, time_bucket, size_bucket, "group", metric, real, sim, diff
    FROM pairs,
    LATERAL (VALUES
        ('implementation_shortfall_bps', implementation_shortfall_bps, sim_implementation_shortfall_bps,
         delta_implementation_shortfall_bps),
        ('arrival_cost_bps', arrival_cost_bps, sim_arrival_cost_bps, delta_arrival_cost_bps),
        ('effective_spread_bps', effective_spread_bps, sim_effective_spread_bps, delta_effective_spread_bps),
        ('fill_ratio', fill_ratio, sim_fill_ratio, delta_fill_ratio),
        ('vw_exec_time_s', vw_exec_time_s, sim_vw_exec_time_s, delta_vw_exec_time_s)
    ) AS m(metric, real, sim, diff)
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
    scenario,
    metric,
    security_code,
    date,
    participantid,
    time_bucket,
    size_bucket,
    "group",
    count(diff)                                        AS n,
    count(*) - count(diff)                             AS n_excluded,
    count(CASE WHEN diff <> 0 THEN diff END)                     AS n_nonzero,
    count(CASE WHEN diff < 0 THEN diff END)                      AS n_negative,
    count(CASE WHEN isnan(diff) THEN diff END)                   AS n_nan,
    count(CASE WHEN diff IS NOT NULL THEN real END)              AS n_real,
    sum(CASE WHEN diff IS NOT NULL THEN real END)                AS sum_real,
    count(CASE WHEN diff IS NOT NULL THEN sim END)               AS n_sim,
    sum(CASE WHEN diff IS NOT NULL THEN sim END)                 AS sum_sim,
    avg(diff)                                          AS mean_diff,
    var_pop(diff) * count(diff)                        AS m2_diff
FROM metric_pairs
GROUP BY GROUPING SETS (
    (scenario, metric), (scenario, metric, security_code), (scenario, metric, date),
    (scenario, metric, participantid), (scenario, metric, time_bucket), (scenario, metric, size_bucket),
    (scenario, metric, "group")
);
