-- segment_measures: the figures of every aggregate (global_summary, by_*) in one pass over `pairs`.
-- Grain: one row per scenario × segment, for the segment types below (GROUPING SETS); each
--        global_summary / by_*.sql selects its own rows and grain columns from this temp table.
-- params: none
-- reads:  pairs (temp table from pairs.sql), segment_fidelity (temp table from segment_fidelity.sql)
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
--   n_both, n_real_only, n_sim_only, n_neither   sweeps in each `set`
--   n_without_sim                  sweeps with no sim_orders row for the scenario (a missing result; should be 0)
--   n_partitions, fidelity_min, fidelity_mean   the segment's partitions and their reality-replay fidelity:
--                                  the lowest, and Σ reproduced / Σ real CP quantity
-- Ratios and weighted means are null when their denominator is 0.
CREATE OR REPLACE TEMP TABLE segment_measures AS
WITH measures AS (
SELECT
    CASE
        WHEN grouping(security_code) = 0 THEN 'security'
        WHEN grouping(date) = 0 THEN 'date'
        WHEN grouping(participantid) = 0 THEN 'participant'
        WHEN grouping(time_bucket) = 0 THEN 'time_bucket'
        WHEN grouping(size_bucket) = 0 THEN 'size_bucket'
        WHEN grouping("group") = 0 THEN 'group'
        ELSE 'overall'
    END                                                                       AS segment_type,
    scenario,
    security_code,
    date,
    participantid,
    time_bucket,
    size_bucket,
    "group",
    count(*)                                                                  AS n_sweeps,
    count(*) FILTER ("group" = 'full')                                        AS n_full,
    count(*) FILTER ("group" = 'partial')                                     AS n_partial,
    count(*) FILTER ("group" = 'none')                                        AS n_none,
    count(*) FILTER (qualifying)                                              AS n_qualifying,
    count(arrival_mid)                                                        AS n_with_mid,
    count(delta_implementation_shortfall_bps)                                 AS n_with_delta,
    sum(order_quantity)::BIGINT                                               AS order_quantity,
    sum(w_is)                                                                 AS notional,
    sum(filled_quantity)::BIGINT                                              AS filled_quantity,
    sum(filled_lit)::BIGINT                                                   AS filled_lit,
    sum(filled_dark)::BIGINT                                                  AS filled_dark,
    sum(filled_auction)::BIGINT                                               AS filled_auction,
    sum(filled_reported)::BIGINT                                              AS filled_reported,
    sum(booking_quantity)::BIGINT                                             AS booking_quantity,
    sum(sim_quantity)::BIGINT                                                 AS sim_quantity,
    sum(sim_filled_quantity)::BIGINT                                          AS sim_filled_quantity,
    sum(sim_filled_resting)::BIGINT                                           AS sim_filled_resting,
    sum(sim_filled_incoming)::BIGINT                                          AS sim_filled_incoming,
    sum(filled_quantity) / nullif(sum(order_quantity), 0)                     AS fill_ratio,
    sum(sim_filled_quantity) / nullif(sum(order_quantity) FILTER (has_sim), 0) AS sim_fill_ratio,
    sum(sim_filled_resting) / nullif(sum(sim_quantity), 0)                    AS sim_rested_fill_ratio,
    sum(filled_dark) / nullif(sum(filled_quantity), 0)                        AS share_filled_dark,
    sum(arrival_cost_bps * w_fill)
        / nullif(sum(w_fill) FILTER (arrival_cost_bps IS NOT NULL), 0)                            AS nw_arrival_cost_bps,
    sum(opportunity_cost_bps * w_opp)
        / nullif(sum(w_opp) FILTER (opportunity_cost_bps IS NOT NULL), 0)                         AS nw_opportunity_cost_bps,
    sum(implementation_shortfall_bps * w_is)
        / nullif(sum(w_is) FILTER (implementation_shortfall_bps IS NOT NULL), 0)                  AS nw_implementation_shortfall_bps,
    sum(sim_implementation_shortfall_bps * w_is)
        / nullif(sum(w_is) FILTER (sim_implementation_shortfall_bps IS NOT NULL), 0)              AS nw_sim_implementation_shortfall_bps,
    sum(delta_implementation_shortfall_bps * w_is)
        / nullif(sum(w_is) FILTER (delta_implementation_shortfall_bps IS NOT NULL), 0)            AS nw_delta_implementation_shortfall_bps,
    sum(effective_spread_bps * w_spread)
        / nullif(sum(w_spread) FILTER (effective_spread_bps IS NOT NULL), 0)                      AS nw_effective_spread_bps,
    sum(sim_arrival_cost_bps * sim_w_fill)
        / nullif(sum(sim_w_fill) FILTER (sim_arrival_cost_bps IS NOT NULL), 0)                    AS nw_sim_arrival_cost_bps,
    sum(sim_effective_spread_bps * sim_w_spread)
        / nullif(sum(sim_w_spread) FILTER (sim_effective_spread_bps IS NOT NULL), 0)              AS nw_sim_effective_spread_bps,
    sum(price_improvement_bps * w_fill)
        / nullif(sum(w_fill) FILTER (price_improvement_bps IS NOT NULL), 0)                       AS nw_price_improvement_bps,
    sum(vw_exec_time_s * filled_quantity)
        / nullif(sum(filled_quantity) FILTER (vw_exec_time_s IS NOT NULL), 0)                     AS vw_exec_time_s,
    sum(sim_vw_exec_time_s * sim_filled_quantity)
        / nullif(sum(sim_filled_quantity) FILTER (sim_vw_exec_time_s IS NOT NULL), 0)             AS sim_vw_exec_time_s,
    avg(delta_implementation_shortfall_bps)                                   AS mean_delta_implementation_shortfall_bps,
    median(delta_implementation_shortfall_bps)                                AS median_delta_implementation_shortfall_bps,
    avg(delta_arrival_cost_bps)                                               AS mean_delta_arrival_cost_bps,
    median(delta_arrival_cost_bps)                                            AS median_delta_arrival_cost_bps,
    avg(delta_fill_ratio)                                                     AS mean_delta_fill_ratio,
    median(delta_fill_ratio)                                                  AS median_delta_fill_ratio,
    avg(delta_vw_exec_time_s)                                                 AS mean_delta_vw_exec_time_s,
    median(delta_vw_exec_time_s)                                              AS median_delta_vw_exec_time_s,
    count(*) FILTER ("set" = 'both')                                          AS n_both,
    count(*) FILTER ("set" = 'real_only')                                     AS n_real_only,
    count(*) FILTER ("set" = 'sim_only')                                      AS n_sim_only,
    count(*) FILTER ("set" = 'neither')                                       AS n_neither,
    count(*) FILTER (NOT has_sim)                                             AS n_without_sim
FROM pairs
GROUP BY GROUPING SETS (
    (scenario),
    (scenario, security_code),
    (scenario, date),
    (scenario, participantid),
    (scenario, time_bucket),
    (scenario, size_bucket),
    (scenario, "group")
)
)
SELECT m.*, f.n_partitions, f.fidelity_min, f.fidelity_mean
FROM measures AS m
LEFT JOIN segment_fidelity AS f
    ON  f.segment_type = m.segment_type
    AND f.security_code IS NOT DISTINCT FROM m.security_code
    AND f.date IS NOT DISTINCT FROM m.date
    AND f.participantid IS NOT DISTINCT FROM m.participantid
    AND f.time_bucket IS NOT DISTINCT FROM m.time_bucket
    AND f.size_bucket IS NOT DISTINCT FROM m.size_bucket
    AND f."group" IS NOT DISTINCT FROM m."group";
