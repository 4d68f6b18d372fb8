-- segments: cost and fill by order size bucket and by time-of-day bucket for one scenario.
-- Grain: one row per segment (segment_type size | time × bucket), buckets in the config's order.
-- params: $scenario     VARCHAR    the scenario
--         $size_order   VARCHAR[]  buckets.size names in order
--         $time_order   VARCHAR[]  buckets.time_of_day names in order
-- reads:  by_order_size, by_time_of_day (aggregates)
-- Columns: segment_type, segment, n_sweeps, notional, real_is_bps / sim_is_bps (notional-weighted over
--          the segment's sweeps with each), delta_is_bps (over the sweeps with both), fill_ratio, sim_fill_ratio
SELECT * FROM (
    SELECT 'size' AS segment_type, size_bucket AS segment, n_sweeps, notional,
           nw_implementation_shortfall_bps AS real_is_bps, nw_sim_implementation_shortfall_bps AS sim_is_bps,
           nw_delta_implementation_shortfall_bps AS delta_is_bps, fill_ratio, sim_fill_ratio
    FROM by_order_size
    WHERE scenario = $scenario
    UNION ALL
    SELECT 'time', time_bucket, n_sweeps, notional,
           nw_implementation_shortfall_bps, nw_sim_implementation_shortfall_bps,
           nw_delta_implementation_shortfall_bps, fill_ratio, sim_fill_ratio
    FROM by_time_of_day
    WHERE scenario = $scenario
)
ORDER BY segment_type,
         coalesce(list_position($size_order, segment), list_position($time_order, segment), 1000000),
         segment;
