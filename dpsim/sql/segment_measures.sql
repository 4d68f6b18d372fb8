-- segment_measures: the figures of every aggregate (global_summary, by_*), merged from the partial aggregates
-- of the lake's slices: counts and sums add, each weighted mean is Σ numerators / Σ denominators, so the
-- merge is exact; the medians come from the sorted stream of differences (dpsim.ranks), the fidelity from
-- partial_fidelity.sql.
-- Grain: one row per scenario × segment, for the segment types below (GROUPING SETS of partial_measures.sql);
--        each global_summary / by_*.sql selects its own rows and grain columns from this temp table.
-- params: none
-- reads:  measures_rows (partial_measures.sql of every slice), fidelity_rows (partial_fidelity.sql of every
--         slice), segment_ranks (stats_moments.sql with each segment's median of d from the stream pass:
--         one row per scenario × metric × segment)
-- Columns:
--   segment_type                   overall | security | date | participant | time_bucket | size_bucket | group (as in stats_tests)
--   scenario                       simulation scenario (config scenarios)
--   security_code, date, participantid, time_bucket, size_bucket, "group"
--                                  the segment's key (null where the segment type does not use it; a null
--                                  key value within its own segment type is a row of its own)
--   n_sweeps                       analysed sweeps
--   n_full, n_partial, n_none      sweeps by fill group
--   n_qualifying                   sweeps whose whole residual went to the lit book
--   n_with_mid                     sweeps with an arrival mid (the others have no cost figures)
--   n_with_delta                   sweeps with a real and a simulated implementation shortfall
--   order_quantity                 Σ order quantity Q (shares)
--   notional                       Σ Q · arrival mid (thousandths of a dollar), over sweeps with a mid
--   filled_quantity                Σ real filled quantity (fills only: lit + dark + auction + reported)
--   filled_lit, filled_dark, filled_auction, filled_reported   Σ real quantity per fill class
--   booking_quantity               Σ UCP booking-report quantity (never fills)
--   sim_quantity                   Σ quantity that rested in the simulation
--   sim_filled_quantity            Σ simulated path filled quantity (real fills at arrival + replay fills)
--   sim_filled_resting             Σ replay fills the sweep got while resting
--   sim_filled_incoming            Σ replay fills the sweep got as the incoming order
--   fill_ratio                     Σ filled_quantity / Σ order_quantity (volume-based, not a mean of ratios)
--   sim_fill_ratio                 Σ sim_filled_quantity / Σ order_quantity, over sweeps with a sim row
--   sim_rested_fill_ratio          Σ sim_filled_resting / Σ sim_quantity: share of what rested that filled
--   share_filled_dark              Σ filled_dark / Σ filled_quantity (real)
--   nw_arrival_cost_bps            arrival cost, weighted by the notional of the fills (Σ q·p)
--   nw_opportunity_cost_bps        opportunity cost, weighted by unfilled quantity · arrival mid
--   nw_implementation_shortfall_bps   real implementation shortfall, weighted by Q · arrival mid
--   nw_sim_implementation_shortfall_bps  simulated implementation shortfall, same weights
--   nw_delta_implementation_shortfall_bps  Σ w·δ / Σ w of δ = sim − real IS over sweeps with both (the headline)
--   nw_effective_spread_bps        effective spread, weighted by the notional of its lit and dark fills
--   nw_sim_arrival_cost_bps, nw_sim_effective_spread_bps   the same on the simulated path
--   nw_price_improvement_bps       price improvement against the arrival NBBO, weighted by fill notional
--   vw_exec_time_s, sim_vw_exec_time_s   share-weighted volume-weighted time to execution (seconds)
--   mean_delta_<m>, median_delta_<m>   unweighted mean / median over sweeps of delta = sim − real, for m in
--                                  implementation_shortfall_bps, arrival_cost_bps, fill_ratio, vw_exec_time_s
--                                  (the median exact, as DuckDB's median(): the mean of the two middle values)
--   n_both, n_real_only, n_sim_only, n_neither   sweeps in each `set`
--   n_without_sim                  sweeps with no sim_orders row for the scenario (a missing result; should be 0)
--   n_partitions, fidelity_min, fidelity_mean   the segment's partitions and their reality-replay fidelity:
--                                  the lowest, and Σ reproduced / Σ real CP quantity
-- Ratios and weighted means are null when their denominator is 0.
CREATE OR REPLACE TEMP TABLE segment_measures AS
WITH merged AS (
    SELECT
        segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group",
        sum(n_sweeps)::BIGINT                            AS n_sweeps,
        sum(n_full)::BIGINT                              AS n_full,
        sum(n_partial)::BIGINT                           AS n_partial,
        sum(n_none)::BIGINT                              AS n_none,
        sum(n_qualifying)::BIGINT                        AS n_qualifying,
        sum(n_with_mid)::BIGINT                          AS n_with_mid,
        sum(n_with_delta)::BIGINT                        AS n_with_delta,
        sum(order_quantity)::BIGINT                      AS order_quantity,
        sum(notional)                                    AS notional,
        sum(filled_quantity)::BIGINT                     AS filled_quantity,
        sum(filled_lit)::BIGINT                          AS filled_lit,
        sum(filled_dark)::BIGINT                         AS filled_dark,
        sum(filled_auction)::BIGINT                      AS filled_auction,
        sum(filled_reported)::BIGINT                     AS filled_reported,
        sum(booking_quantity)::BIGINT                    AS booking_quantity,
        sum(sim_quantity)::BIGINT                        AS sim_quantity,
        sum(sim_filled_quantity)::BIGINT                 AS sim_filled_quantity,
        sum(sim_filled_resting)::BIGINT                  AS sim_filled_resting,
        sum(sim_filled_incoming)::BIGINT                 AS sim_filled_incoming,
        sum(order_quantity_with_sim)::BIGINT             AS order_quantity_with_sim,
        sum(s_arrival_cost)                              AS s_arrival_cost,
        sum(w_arrival_cost)                              AS w_arrival_cost,
        sum(s_opportunity_cost)                          AS s_opportunity_cost,
        sum(w_opportunity_cost)                          AS w_opportunity_cost,
        sum(s_implementation_shortfall)                  AS s_implementation_shortfall,
        sum(w_implementation_shortfall)                  AS w_implementation_shortfall,
        sum(s_sim_implementation_shortfall)              AS s_sim_implementation_shortfall,
        sum(w_sim_implementation_shortfall)              AS w_sim_implementation_shortfall,
        sum(s_delta_implementation_shortfall)            AS s_delta_implementation_shortfall,
        sum(w_delta_implementation_shortfall)            AS w_delta_implementation_shortfall,
        sum(s_effective_spread)                          AS s_effective_spread,
        sum(w_effective_spread)                          AS w_effective_spread,
        sum(s_sim_arrival_cost)                          AS s_sim_arrival_cost,
        sum(w_sim_arrival_cost)                          AS w_sim_arrival_cost,
        sum(s_sim_effective_spread)                      AS s_sim_effective_spread,
        sum(w_sim_effective_spread)                      AS w_sim_effective_spread,
        sum(s_price_improvement)                         AS s_price_improvement,
        sum(w_price_improvement)                         AS w_price_improvement,
        sum(s_vw_exec_time)                              AS s_vw_exec_time,
        sum(w_vw_exec_time)                              AS w_vw_exec_time,
        sum(s_sim_vw_exec_time)                          AS s_sim_vw_exec_time,
        sum(w_sim_vw_exec_time)                          AS w_sim_vw_exec_time,
        sum(s_delta_implementation_shortfall_bps)        AS s_delta_implementation_shortfall_bps,
        sum(n_delta_implementation_shortfall_bps)        AS n_delta_implementation_shortfall_bps,
        sum(s_delta_arrival_cost_bps)                    AS s_delta_arrival_cost_bps,
        sum(n_delta_arrival_cost_bps)                    AS n_delta_arrival_cost_bps,
        sum(s_delta_fill_ratio)                          AS s_delta_fill_ratio,
        sum(n_delta_fill_ratio)                          AS n_delta_fill_ratio,
        sum(s_delta_vw_exec_time_s)                      AS s_delta_vw_exec_time_s,
        sum(n_delta_vw_exec_time_s)                      AS n_delta_vw_exec_time_s,
        sum(n_both)::BIGINT                              AS n_both,
        sum(n_real_only)::BIGINT                         AS n_real_only,
        sum(n_sim_only)::BIGINT                          AS n_sim_only,
        sum(n_neither)::BIGINT                           AS n_neither,
        sum(n_without_sim)::BIGINT                       AS n_without_sim
    FROM measures_rows
    GROUP BY segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group"
),
medians AS (
    SELECT
        segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group",
        any_value(median) FILTER (metric = 'implementation_shortfall_bps')   AS median_delta_implementation_shortfall_bps,
        any_value(median) FILTER (metric = 'arrival_cost_bps')               AS median_delta_arrival_cost_bps,
        any_value(median) FILTER (metric = 'fill_ratio')                     AS median_delta_fill_ratio,
        any_value(median) FILTER (metric = 'vw_exec_time_s')                 AS median_delta_vw_exec_time_s
    FROM segment_ranks
    GROUP BY segment_type, scenario, security_code, date, participantid, time_bucket, size_bucket, "group"
),
fidelity AS (
    SELECT
        segment_type, security_code, date, participantid, time_bucket, size_bucket, "group",
        sum(n_partitions)::BIGINT                                       AS n_partitions,
        min(fidelity_min)                                               AS fidelity_min,
        sum(reproduced_quantity) / nullif(sum(real_cp_quantity), 0)     AS fidelity_mean
    FROM fidelity_rows
    GROUP BY segment_type, security_code, date, participantid, time_bucket, size_bucket, "group"
)
SELECT
    m.segment_type,
    m.scenario,
    m.security_code,
    m.date,
    m.participantid,
    m.time_bucket,
    m.size_bucket,
    m."group",
    m.n_sweeps,
    m.n_full,
    m.n_partial,
    m.n_none,
    m.n_qualifying,
    m.n_with_mid,
    m.n_with_delta,
    m.order_quantity,
    m.notional,
    m.filled_quantity,
    m.filled_lit,
    m.filled_dark,
    m.filled_auction,
    m.filled_reported,
    m.booking_quantity,
    m.sim_quantity,
    m.sim_filled_quantity,
    m.sim_filled_resting,
    m.sim_filled_incoming,
    m.filled_quantity / nullif(m.order_quantity, 0)                                  AS fill_ratio,
    m.sim_filled_quantity / nullif(m.order_quantity_with_sim, 0)                     AS sim_fill_ratio,
    m.sim_filled_resting / nullif(m.sim_quantity, 0)                                 AS sim_rested_fill_ratio,
    m.filled_dark / nullif(m.filled_quantity, 0)                                     AS share_filled_dark,
    m.s_arrival_cost / nullif(m.w_arrival_cost, 0)                                   AS nw_arrival_cost_bps,
    m.s_opportunity_cost / nullif(m.w_opportunity_cost, 0)                           AS nw_opportunity_cost_bps,
    m.s_implementation_shortfall / nullif(m.w_implementation_shortfall, 0)           AS nw_implementation_shortfall_bps,
    m.s_sim_implementation_shortfall / nullif(m.w_sim_implementation_shortfall, 0)   AS nw_sim_implementation_shortfall_bps,
    m.s_delta_implementation_shortfall / nullif(m.w_delta_implementation_shortfall, 0)
                                                                                     AS nw_delta_implementation_shortfall_bps,
    m.s_effective_spread / nullif(m.w_effective_spread, 0)                           AS nw_effective_spread_bps,
    m.s_sim_arrival_cost / nullif(m.w_sim_arrival_cost, 0)                           AS nw_sim_arrival_cost_bps,
    m.s_sim_effective_spread / nullif(m.w_sim_effective_spread, 0)                   AS nw_sim_effective_spread_bps,
    m.s_price_improvement / nullif(m.w_price_improvement, 0)                         AS nw_price_improvement_bps,
    m.s_vw_exec_time / nullif(m.w_vw_exec_time, 0)                                   AS vw_exec_time_s,
    m.s_sim_vw_exec_time / nullif(m.w_sim_vw_exec_time, 0)                           AS sim_vw_exec_time_s,
    m.s_delta_implementation_shortfall_bps / nullif(m.n_delta_implementation_shortfall_bps, 0)
                                                                                     AS mean_delta_implementation_shortfall_bps,
    md.median_delta_implementation_shortfall_bps,
    m.s_delta_arrival_cost_bps / nullif(m.n_delta_arrival_cost_bps, 0)               AS mean_delta_arrival_cost_bps,
    md.median_delta_arrival_cost_bps,
    m.s_delta_fill_ratio / nullif(m.n_delta_fill_ratio, 0)                           AS mean_delta_fill_ratio,
    md.median_delta_fill_ratio,
    m.s_delta_vw_exec_time_s / nullif(m.n_delta_vw_exec_time_s, 0)                   AS mean_delta_vw_exec_time_s,
    md.median_delta_vw_exec_time_s,
    m.n_both,
    m.n_real_only,
    m.n_sim_only,
    m.n_neither,
    m.n_without_sim,
    f.n_partitions,
    f.fidelity_min,
    f.fidelity_mean
FROM merged AS m
LEFT JOIN fidelity AS f
    ON  f.segment_type = m.segment_type
    AND f.security_code IS NOT DISTINCT FROM m.security_code
    AND f.date IS NOT DISTINCT FROM m.date
    AND f.participantid IS NOT DISTINCT FROM m.participantid
    AND f.time_bucket IS NOT DISTINCT FROM m.time_bucket
    AND f.size_bucket IS NOT DISTINCT FROM m.size_bucket
    AND f."group" IS NOT DISTINCT FROM m."group"
LEFT JOIN medians AS md
    ON  md.segment_type = m.segment_type
    AND md.scenario = m.scenario
    AND md.security_code IS NOT DISTINCT FROM m.security_code
    AND md.date IS NOT DISTINCT FROM m.date
    AND md.participantid IS NOT DISTINCT FROM m.participantid
    AND md.time_bucket IS NOT DISTINCT FROM m.time_bucket
    AND md.size_bucket IS NOT DISTINCT FROM m.size_bucket
    AND md."group" IS NOT DISTINCT FROM m."group";
