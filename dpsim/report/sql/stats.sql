-- stats: the paired tests over all analysed sweeps (segment `overall`) per scenario and metric.
-- Grain: one row per scenario × metric.
-- params: $scenarios  VARCHAR[]  the scenarios shown, in order
--         $metrics    VARCHAR[]  the compared metrics, in order (dpsim.aggregate.STATS_METRICS)
-- reads:  stats_tests (aggregate)
SELECT scenario, family, metric, n, n_nonzero, mean_diff, ci_low, ci_high, t, p_value_t, q_value_t,
       p_value_wilcoxon, q_value_wilcoxon, cohens_d, note
FROM stats_tests
WHERE segment_type = 'overall' AND list_contains($scenarios, scenario)
ORDER BY list_position($scenarios, scenario), list_position($metrics, metric);
