-- bootstrap_clusters: the clusters of the headline's bootstrap for one scenario, with their sufficient sums,
-- merged from the slices (a partition lies in one slice, so its row is already whole).
-- Grain: one row per (security_code, date) partition holding >= 1 sweep with a non-null
--        delta_implementation_shortfall_bps.
-- params: $scenario  VARCHAR  the scenario
-- reads:  cluster_rows (partial_clusters.sql of every slice)
-- Columns (in a fixed order, so the seeded resampling is deterministic: the order of bootstrap_units.sql):
--   w    Σ Q · arrival mid of the partition's sweeps with a delta (the notional weight)
--   wd   Σ Q · arrival mid · delta_implementation_shortfall_bps over the same sweeps
SELECT
    sum(w)    AS w,
    sum(wd)   AS wd
FROM cluster_rows
WHERE scenario = $scenario
GROUP BY security_code, date
ORDER BY security_code, date;
