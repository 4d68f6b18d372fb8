-- slice_sweeps: the columns of results/sweeps that the partial aggregates read, from one slice's files.
-- Grain: one row per analysed sweep of the files.
-- params: $files  VARCHAR[]  the slice's results/sweeps files (security_code and date from their hive path)
-- reads:  the files
-- Columns: security_code, date, then the columns of results/sweeps that pairs.sql and partial_*.sql use
SELECT
    security_code, date, order_id, participantid, "group", qualifying, size_bucket, time_bucket,
    order_quantity, filled_quantity, filled_lit, filled_dark, filled_auction, filled_reported, booking_quantity,
    unfilled_quantity, arrival_mid, vwap, spread_notional, fill_ratio, arrival_cost_bps, opportunity_cost_bps,
    implementation_shortfall_bps, effective_spread_bps, price_improvement_bps, vw_exec_time_s
FROM read_parquet($files::VARCHAR[], hive_partitioning = true,
                  hive_types = {'security_code': BIGINT, 'date': DATE});
