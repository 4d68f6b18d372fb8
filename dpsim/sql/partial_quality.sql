-- partial_quality: each partition's data-quality row with its replay fidelity, over one slice of the lake
-- (scenario-free): quality_summary.sql needs the partitions themselves (a median over partitions), and
-- one row per partition is small next to the sweeps.
-- Grain: one row per (security_code, date) partition with a results/quality row in the slice.
-- params: none
-- reads:  quality, replay_fidelity (the slice's result files, or the catalog views)
-- Columns: security_code, date; the quality columns quality_summary.sql reads (docs/results.md); and the
--   partition's fidelity, reproduced_quantity and real_cp_quantity (null without a replay_fidelity row)
SELECT
    q.security_code,
    q.date,
    q.open_source,
    q.open,
    q.n_quotes,
    q.n_usable_quotes,
    q.n_stale_quotes,
    q.n_empty_quotes,
    q.n_crossed_quotes,
    q.n_locked_quotes,
    q.n_sweeps,
    q.n_sweeps_analysed,
    q.n_sweeps_outside_session,
    q.n_sweeps_without_mid,
    q.arrival_quote_age_median_s,
    q.arrival_quote_age_p95_s,
    q.quantity_lit,
    q.quantity_dark,
    q.quantity_auction,
    q.quantity_reported,
    q.quantity_booking,
    f.fidelity,
    f.reproduced_quantity,
    f.real_cp_quantity
FROM quality AS q
LEFT JOIN replay_fidelity AS f ON f.security_code = q.security_code AND f.date = q.date;
