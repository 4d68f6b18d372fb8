-- partial_clusters: the clusters of the headline's bootstrap in one slice of the lake, with their sufficient
-- sums: the bootstrap resamples whole partitions, so it needs only each partition's (w, wd)
-- (docs/methodology.md §10); bootstrap_clusters.sql orders the merged rows.
-- Grain: one row per scenario × (security_code, date) partition holding >= 1 sweep with a non-null
--        delta_implementation_shortfall_bps.
-- params: none
-- reads:  pairs (temp table from pairs.sql, over the slice)
-- Columns:
--   scenario, security_code, date   the cluster
--   w    Σ Q · arrival mid of the partition's sweeps with a delta (the notional weight)
--   wd   Σ Q · arrival mid · delta_implementation_shortfall_bps over the same sweeps
SELECT
    scenario,
    security_code,
    date,
    sum(w_is)                                        AS w,
    sum(w_is * delta_implementation_shortfall_bps)   AS wd
FROM pairs
WHERE delta_implementation_shortfall_bps IS NOT NULL
GROUP BY scenario, security_code, date;
