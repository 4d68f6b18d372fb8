-- delta_medians: the per-sweep delta of implementation shortfall per scenario, mean and median (unweighted).
-- Grain: one row per scenario shown.
-- params: $scenarios  VARCHAR[]  the scenarios shown, in order
-- reads:  global_summary (aggregate)
SELECT scenario, n_with_delta, mean_delta_implementation_shortfall_bps AS mean,
       median_delta_implementation_shortfall_bps AS median
FROM global_summary
WHERE list_contains($scenarios, scenario)
ORDER BY list_position($scenarios, scenario);
