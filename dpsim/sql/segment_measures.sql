-- segment_measures: the figures of every aggregate (global_summary, by_*) in one pass over `pairs`.
-- Grain: one row per scenario × segment, for the segment types below (GROUPING SETS); each
--        global_summary / by_*.sql selects its own rows and grain columns from this temp table.
-- params: none
-- reads:  pairs (temp table from pairs.sql: sweeps × scenarios left-joined with sim_orders)
-- Columns:
--   segment_type                   overall | security | date | participant | time_bucket | size_bucket | group (as in stats_tests)
--   scenario                       simulation scenario (config scenarios)
--   security_code, date, participantid, time_bucket, size_bucket, "group"
--                                  the segment's key (null where the segment type does not use it; a null
--                                  key value within its own segment type is a row of its own)
--   n_sweeps                       analysed sweeps
--   n_full, n_partial, n_none      sweeps by fill group (DOMAIN §5.3)
--   n_qualifying                   sweeps whose whole residual went to the lit book (§5.3 `qualifying`)
--   arrival_quantity               Σ arrival quantity (shares)
--   filled_quantity                Σ real filled quantity; filled_dark + filled_lit = filled_quantity
--   filled_dark, filled_lit        Σ real quantity filled on dark / lit dealsources
--   sim_quantity                   Σ quantity that rested in the simulation (sim_orders.sim_quantity)
--   sim_filled_quantity            Σ simulated filled quantity
--   fill_ratio                     Σ filled_quantity / Σ arrival_quantity (volume-based, not a mean of ratios)
--   sim_fill_ratio                 Σ sim_filled_quantity / Σ arrival_quantity, over sweeps with a sim row
--   sim_rested_fill_ratio          Σ sim_filled_quantity / Σ sim_quantity: share of what rested that filled
--   share_filled_dark              Σ filled_dark / Σ filled_quantity (real); simulated fills are all dark
--   vw_arrival_cost_bps            Σ(arrival_cost_bps · filled_quantity) / Σ filled_quantity, over sweeps with a cost
--   sim_vw_arrival_cost_bps        the same on the simulated fills (sim_arrival_cost_bps, sim_filled_quantity)
--   vw_exec_time_s                 Σ(vw_exec_time_s · filled_quantity) / Σ filled_quantity (real VWTE, seconds)
--   sim_vw_exec_time_s             the same on the simulated fills
--   mean_delta_<m>, median_delta_<m>   mean / median over sweeps of delta = sim − real, for m in
--                                  arrival_cost_bps, filled_quantity, fill_ratio, vw_exec_time_s;
--                                  sweeps where either side is null are left out
--   n_both, n_real_only, n_sim_only, n_neither   sweeps in each `set` (DOMAIN §5.6)
--   n_without_sim                  sweeps with no sim_orders row for the scenario (a missing result; should be 0)
-- Ratios are null when their denominator is 0.
CREATE OR REPLACE TEMP TABLE segment_measures AS
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
    sum(arrival_quantity)::BIGINT                                             AS arrival_quantity,
    sum(filled_quantity)::BIGINT                                              AS filled_quantity,
    sum(filled_dark)::BIGINT                                                  AS filled_dark,
    sum(filled_lit)::BIGINT                                                   AS filled_lit,
    sum(sim_quantity)::BIGINT                                                 AS sim_quantity,
    sum(sim_filled_quantity)::BIGINT                                          AS sim_filled_quantity,
    sum(filled_quantity) / nullif(sum(arrival_quantity), 0)                   AS fill_ratio,
    sum(sim_filled_quantity)
        / nullif(sum(arrival_quantity) FILTER (has_sim), 0)                   AS sim_fill_ratio,
    sum(sim_filled_quantity) / nullif(sum(sim_quantity), 0)                   AS sim_rested_fill_ratio,
    sum(filled_dark) / nullif(sum(filled_quantity), 0)                        AS share_filled_dark,
    sum(arrival_cost_bps * filled_quantity)
        / nullif(sum(filled_quantity) FILTER (arrival_cost_bps IS NOT NULL), 0)         AS vw_arrival_cost_bps,
    sum(sim_arrival_cost_bps * sim_filled_quantity)
        / nullif(sum(sim_filled_quantity) FILTER (sim_arrival_cost_bps IS NOT NULL), 0) AS sim_vw_arrival_cost_bps,
    sum(vw_exec_time_s * filled_quantity)
        / nullif(sum(filled_quantity) FILTER (vw_exec_time_s IS NOT NULL), 0)           AS vw_exec_time_s,
    sum(sim_vw_exec_time_s * sim_filled_quantity)
        / nullif(sum(sim_filled_quantity) FILTER (sim_vw_exec_time_s IS NOT NULL), 0)   AS sim_vw_exec_time_s,
    avg(delta_arrival_cost_bps)                                               AS mean_delta_arrival_cost_bps,
    median(delta_arrival_cost_bps)                                            AS median_delta_arrival_cost_bps,
    avg(delta_filled_quantity)                                                AS mean_delta_filled_quantity,
    median(delta_filled_quantity)                                             AS median_delta_filled_quantity,
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
);
