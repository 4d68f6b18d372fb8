-- fill_curve: the cumulative simulated fill of what rested, over time since the sweep's arrival.
-- Grain: one row per scenario × quarter-decade of seconds (10^0.25 steps) holding a resting fill.
-- params: $scenarios  VARCHAR[]  the scenarios shown
-- reads:  sweeps (arrival times), sim_fills (role 'resting': the sweep rested and the contra arrived; the
--         reported sweeps only, docs/results.md), global_summary (Σ rested quantity: sim_quantity)
-- Columns: scenario, seconds (the bin's upper edge), filled_share: Σ resting fills up to then / Σ rested
--          quantity (sim_quantity); its last value is the headline's sim_rested_fill_ratio
WITH rested AS (
    SELECT scenario, sim_quantity AS quantity FROM global_summary WHERE list_contains($scenarios, scenario)
),
fills AS (
    SELECT f.scenario,
           ceil(log10(greatest((f.timestamp - s.arrival_time) / 1e9, 0.001)) * 4) / 4 AS lg,
           sum(f.quantity) AS quantity
    FROM sim_fills AS f
    JOIN sweeps AS s
        ON s.security_code = f.security_code AND s.date = f.date AND s.order_id = f.sweep_order_id
    WHERE f.role = 'resting' AND list_contains($scenarios, f.scenario)
    GROUP BY f.scenario, lg
)
SELECT
    f.scenario,
    power(10, f.lg)                                                                      AS seconds,
    sum(f.quantity) OVER (PARTITION BY f.scenario ORDER BY f.lg) / nullif(r.quantity, 0) AS filled_share
FROM fills AS f
JOIN rested AS r ON r.scenario = f.scenario
ORDER BY list_position($scenarios, f.scenario), f.lg;
