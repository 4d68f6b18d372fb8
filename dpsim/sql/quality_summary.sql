-- quality_summary: how trustworthy the lake's benchmarks are, over every partition (results/quality).
-- Grain: one row.
-- params: none
-- reads:  quality_rows (one row per partition: partial_quality.sql over every slice)
-- Columns:
--   n_partitions                    partitions with results
--   n_open_from_auction             partitions whose session opened at an auction print (the rest: time.open)
--   first_open, last_open           earliest and latest session open (ns UTC)
--   n_quotes … n_locked_quotes      Σ quote rows by class (stale outside [open, close], empty, crossed, locked)
--   n_sweeps, n_sweeps_analysed, n_sweeps_outside_session, n_sweeps_without_mid   Σ sweeps
--   arrival_quote_age_median_s      median over partitions of the partition's median arrival quote age
--   arrival_quote_age_p95_s         largest partition p95 of the arrival quote age
--   quantity_lit … quantity_booking Σ traded quantity per fill class (each execution once)
--   fidelity_min, fidelity_mean     reality-replay fidelity: lowest partition, Σ reproduced / Σ real
SELECT
    count(*)                                          AS n_partitions,
    count(*) FILTER (q.open_source = 'auction')       AS n_open_from_auction,
    min(q.open)                                       AS first_open,
    max(q.open)                                       AS last_open,
    sum(q.n_quotes)::BIGINT                           AS n_quotes,
    sum(q.n_usable_quotes)::BIGINT                    AS n_usable_quotes,
    sum(q.n_stale_quotes)::BIGINT                     AS n_stale_quotes,
    sum(q.n_empty_quotes)::BIGINT                     AS n_empty_quotes,
    sum(q.n_crossed_quotes)::BIGINT                   AS n_crossed_quotes,
    sum(q.n_locked_quotes)::BIGINT                    AS n_locked_quotes,
    sum(q.n_sweeps)::BIGINT                           AS n_sweeps,
    sum(q.n_sweeps_analysed)::BIGINT                  AS n_sweeps_analysed,
    sum(q.n_sweeps_outside_session)::BIGINT           AS n_sweeps_outside_session,
    sum(q.n_sweeps_without_mid)::BIGINT               AS n_sweeps_without_mid,
    median(q.arrival_quote_age_median_s)              AS arrival_quote_age_median_s,
    max(q.arrival_quote_age_p95_s)                    AS arrival_quote_age_p95_s,
    sum(q.quantity_lit)::BIGINT                       AS quantity_lit,
    sum(q.quantity_dark)::BIGINT                      AS quantity_dark,
    sum(q.quantity_auction)::BIGINT                   AS quantity_auction,
    sum(q.quantity_reported)::BIGINT                  AS quantity_reported,
    sum(q.quantity_booking)::BIGINT                   AS quantity_booking,
    min(q.fidelity)                                   AS fidelity_min,
    sum(q.reproduced_quantity) / nullif(sum(q.real_cp_quantity), 0) AS fidelity_mean
FROM quality_rows AS q;
