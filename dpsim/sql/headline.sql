-- headline: real vs simulated implementation shortfall per scenario, on the same sweeps and shares.
-- Grain: one row per scenario. The bootstrap CI and the scenario's world are added by dpsim.aggregate.
-- params: none
-- reads:  measures_rows (partial_measures.sql of every slice; their 'overall' rows add up to the scenario),
--         segment_measures (temp table from segment_measures.sql)
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
WITH totals AS (
    SELECT
        scenario,
        sum(n_sweeps)::BIGINT                            AS n_sweeps,
        sum(n_with_delta)::BIGINT                        AS n_with_delta,
        sum(w_delta_implementation_shortfall)            AS notional,
        sum(s_real_is_with_delta)                        AS s_real,
        sum(s_sim_is_with_delta)                         AS s_sim,
        sum(s_delta_implementation_shortfall)            AS s_delta
    FROM measures_rows
    WHERE segment_type = 'overall'
    GROUP BY scenario
)
SELECT
    t.scenario,
    t.n_sweeps,
    t.n_with_delta,
    t.notional,
    t.s_real / nullif(t.notional, 0)                 AS real_is_bps,
    t.s_sim / nullif(t.notional, 0)                  AS sim_is_bps,
    t.s_delta / nullif(t.notional, 0)                AS delta_is_bps,
    m.fill_ratio,
    m.sim_fill_ratio,
    m.sim_rested_fill_ratio,
    m.n_partitions,
    m.fidelity_min,
    m.fidelity_mean
FROM totals AS t
JOIN segment_measures AS m ON m.scenario = t.scenario AND m.segment_type = 'overall'
ORDER BY t.scenario;
