-- stats_moments: the SQL half of stats_tests, merged from the partial moments of the lake's slices: per
-- scenario, metric and segment, the counts and means of the complete pairs and the mean and standard
-- deviation of the differences d = sim − real. Means and M2 merge as in Chan, Golub & LeVeque (1979),
-- shifted by the first slice's mean (one slice gives back its own figures unchanged). t, p-values, CI,
-- Cohen's d, the Wilcoxon test and q-values are computed from these in Python (dpsim.aggregate).
-- Grain: one row per scenario × metric × segment: overall, and each security, date, participant, time bucket,
-- size bucket and group of the scenario's sweeps, including segments without a single complete pair.
-- params: $scenarios  VARCHAR[]  the scenarios, in the order of the output
--         $metrics    VARCHAR[]  the metrics, in the order of the output
-- reads:  moments_rows (partial_moments.sql of every slice)
-- Columns:
--   scenario, metric, segment_type   the test (rows sorted by scenario and metric as given, then segment type
--                   in the order overall, security, date, participant, time_bucket, size_bucket, group)
--   segment         the segment's value as text ('all' for overall; dates as YYYY-MM-DD; may be null)
--   security_code, date, participantid, time_bucket, size_bucket, "group"   the segment's key (native types)
--   n               complete pairs: the per-sweep delta (sim_orders.delta_<metric>) is known
--   n_excluded      sweeps of the segment left out because one side is null (e.g. no cost without fills)
--   n_nonzero       complete pairs with a non-zero delta (what the Wilcoxon test ranks)
--   n_negative, n_nan   complete pairs with a negative / NaN delta (for the stream pass)
--   mean_real       mean real value over the complete pairs
--   mean_sim        mean simulated value over the complete pairs
--   mean_diff       mean of diff = sim − real (|diff| < 1e-9 counts as 0, as in sim_orders)
--   sd_diff         sample standard deviation of diff (null when n < 2)
WITH shifted AS (
    SELECT
        *,
        first_value(mean_diff IGNORE NULLS) OVER seg AS shift
    FROM moments_rows
    WINDOW seg AS (
        PARTITION BY scenario, metric, segment_type, security_code, date, participantid, time_bucket,
                     size_bucket, "group"
        ORDER BY slice_date
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    )
),
centred AS (
    SELECT
        *,
        shift + sum(n * (mean_diff - shift)) OVER seg / nullif(sum(n) OVER seg, 0) AS grand_mean
    FROM shifted
    WINDOW seg AS (
        PARTITION BY scenario, metric, segment_type, security_code, date, participantid, time_bucket,
                     size_bucket, "group"
    )
),
merged AS (
    SELECT
        scenario, metric, segment_type, security_code, date, participantid, time_bucket, size_bucket, "group",
        sum(n)::BIGINT                                                  AS n,
        sum(n_excluded)::BIGINT                                         AS n_excluded,
        sum(n_nonzero)::BIGINT                                          AS n_nonzero,
        sum(n_negative)::BIGINT                                         AS n_negative,
        sum(n_nan)::BIGINT                                              AS n_nan,
        sum(sum_real) / nullif(sum(n_real), 0)                          AS mean_real,
        sum(sum_sim) / nullif(sum(n_sim), 0)                            AS mean_sim,
        any_value(grand_mean)                                           AS mean_diff,
        sum(m2_diff + n * (mean_diff - grand_mean) * (mean_diff - grand_mean)) FILTER (n > 0)  AS m2_diff
    FROM centred
    GROUP BY scenario, metric, segment_type, security_code, date, participantid, time_bucket, size_bucket, "group"
)
SELECT
    scenario,
    metric,
    segment_type,
    CASE segment_type
        WHEN 'security'    THEN security_code::VARCHAR
        WHEN 'date'        THEN strftime(date, '%Y-%m-%d')
        WHEN 'participant' THEN participantid::VARCHAR
        WHEN 'time_bucket' THEN time_bucket
        WHEN 'size_bucket' THEN size_bucket
        WHEN 'group'       THEN "group"
        ELSE 'all'
    END                                                                 AS segment,
    security_code, date, participantid, time_bucket, size_bucket, "group",
    n, n_excluded, n_nonzero, n_negative, n_nan,
    mean_real,
    mean_sim,
    mean_diff,
    CASE WHEN n >= 2 THEN sqrt(greatest(m2_diff, 0) / (n - 1)) END     AS sd_diff
FROM merged
ORDER BY
    list_position($scenarios::VARCHAR[], scenario),
    list_position($metrics::VARCHAR[], metric),
    list_position(['overall', 'security', 'date', 'participant', 'time_bucket', 'size_bucket', 'group'], segment_type),
    segment;
