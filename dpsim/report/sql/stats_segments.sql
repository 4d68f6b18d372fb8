-- stats_segments: the segments' paired tests of one family (scenario × metric), smallest q first.
-- Grain: one row per segment (not `overall`) of the family; at most $limit rows.
-- params: $scenario  VARCHAR  the scenario
--         $metric    VARCHAR  the metric
--         $min_n     INTEGER  stats.min_segment_n: fewer pairs and the row is flagged `small`
--         $limit     INTEGER  rows shown
-- reads:  stats_tests (aggregate)
SELECT family, segment_type, segment, n, mean_diff, ci_low, ci_high, p_value_t, q_value_t,
       p_value_wilcoxon, q_value_wilcoxon, note, n < $min_n AS small
FROM stats_tests
WHERE scenario = $scenario AND metric = $metric AND segment_type <> 'overall'
ORDER BY q_value_t NULLS LAST, segment_type, segment
LIMIT $limit;
