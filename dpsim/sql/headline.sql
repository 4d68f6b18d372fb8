-- headline: real vs simulated implementation shortfall per scenario, on the same sweeps and shares.
-- Grain: one row per scenario. The bootstrap CI and the scenario's world are added by dpsim.aggregate.
-- params: none
-- reads:  pairs (temp table from pairs.sql), segment_measures (temp table from segment_measures.sql)
-- Columns:
--   scenario                       simulation scenario (config scenarios)
--   n_sweeps                       analysed sweeps
--   n_with_delta                   sweeps with both a real and a simulated implementation shortfall
--   notional                       Σ Q · arrival mid over them (the weight; thousandths of a dollar · shares)
--   real_is_bps                    notional-weighted real implementation shortfall over those sweeps
--   sim_is_bps                     the same, simulated (so delta_is_bps = sim_is_bps − real_is_bps)
--   delta_is_bps                   notional-weighted mean delta_implementation_shortfall_bps (negative =
--                                  resting in Centre Point would have been cheaper)
--   fill_ratio, sim_fill_ratio, sim_rested_fill_ratio   from segment_measures (overall)
--   n_partitions, fidelity_min, fidelity_mean   the reality replay's fidelity over the lake's partitions
SELECT
    p.scenario,
    count(*)                                                                      AS n_sweeps,
    count(p.delta_implementation_shortfall_bps)                                   AS n_with_delta,
    sum(p.w_is) FILTER (p.delta_implementation_shortfall_bps IS NOT NULL)         AS notional,
    sum(p.w_is * p.implementation_shortfall_bps) FILTER (p.delta_implementation_shortfall_bps IS NOT NULL)
        / nullif(sum(p.w_is) FILTER (p.delta_implementation_shortfall_bps IS NOT NULL), 0)        AS real_is_bps,
    sum(p.w_is * p.sim_implementation_shortfall_bps) FILTER (p.delta_implementation_shortfall_bps IS NOT NULL)
        / nullif(sum(p.w_is) FILTER (p.delta_implementation_shortfall_bps IS NOT NULL), 0)        AS sim_is_bps,
    sum(p.w_is * p.delta_implementation_shortfall_bps)
        / nullif(sum(p.w_is) FILTER (p.delta_implementation_shortfall_bps IS NOT NULL), 0)        AS delta_is_bps,
    any_value(m.fill_ratio)                                                       AS fill_ratio,
    any_value(m.sim_fill_ratio)                                                   AS sim_fill_ratio,
    any_value(m.sim_rested_fill_ratio)                                            AS sim_rested_fill_ratio,
    any_value(m.n_partitions)                                                     AS n_partitions,
    any_value(m.fidelity_min)                                                     AS fidelity_min,
    any_value(m.fidelity_mean)                                                    AS fidelity_mean
FROM pairs AS p
JOIN segment_measures AS m ON m.scenario = p.scenario AND m.segment_type = 'overall'
GROUP BY p.scenario
ORDER BY p.scenario;
