-- spreads: realized spread and price impact of the real fills over the horizons.
-- Grain: one row per horizon, in the files' column order (metrics.horizons_s of the run that wrote them).
-- Each figure is weighted by its own notional (spread_notional_<h>s: the fills having the mid at t + h),
-- so effective = realized + impact holds per horizon up to the fills each covers.
-- params: none
-- reads:  sweeps
-- Columns: i (1-based horizon position), n_sweeps (with a figure), realized_spread_bps, price_impact_bps,
--          effective_spread_bps (weighted by spread_notional, over the sweeps with one; the same on every row)
WITH l AS (
    SELECT
        list_value(*COLUMNS('^realized_spread_.+s_bps$')) AS rs,
        list_value(*COLUMNS('^price_impact_.+s_bps$'))    AS pi,
        list_value(*COLUMNS('^spread_notional_.+s$'))     AS w,
        effective_spread_bps                               AS eff,
        spread_notional                                    AS sn
    FROM sweeps
    WHERE effective_spread_bps IS NOT NULL  -- without a lit or dark fill with a benchmark, no spread at all
),
u AS (
    SELECT generate_subscripts(rs, 1) AS i, unnest(rs) AS rs, unnest(pi) AS pi, unnest(w) AS w, eff, sn
    FROM l
)
SELECT
    i,
    count(rs)                                                                  AS n_sweeps,
    sum(rs * w) FILTER (rs IS NOT NULL) / nullif(sum(w) FILTER (rs IS NOT NULL), 0) AS realized_spread_bps,
    sum(pi * w) FILTER (pi IS NOT NULL) / nullif(sum(w) FILTER (pi IS NOT NULL), 0) AS price_impact_bps,
    sum(eff * sn) / nullif(sum(sn), 0)  AS effective_spread_bps  -- each sweep once per horizon: the same on every row
FROM u
GROUP BY i
ORDER BY i;
