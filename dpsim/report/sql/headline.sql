-- headline: the headline per scenario (real vs simulated implementation shortfall, its 95 % CI,
-- the replay fidelity), in the report's scenario order.
-- Grain: one row per scenario shown.
-- params: $scenarios  VARCHAR[]  the scenarios shown, in order
-- reads:  headline (aggregate)
SELECT
    scenario, world, n_sweeps, n_with_delta, notional, real_is_bps, sim_is_bps, delta_is_bps,
    ci_low, ci_high, ci_unit, n_clusters, fill_ratio, sim_fill_ratio, sim_rested_fill_ratio,
    n_partitions, fidelity_min, fidelity_mean
FROM headline
WHERE list_contains($scenarios, scenario)
ORDER BY list_position($scenarios, scenario);
