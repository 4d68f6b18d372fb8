-- slice_quality: results/quality from one slice's files.
-- Grain: one row per partition of the files.
-- params: $files  VARCHAR[]  the slice's results/quality files (security_code, date from the hive path)
-- reads:  the files
-- Columns: security_code, date and every column of results/quality (docs/results.md)
SELECT *
FROM read_parquet($files::VARCHAR[], hive_partitioning = true,
                  hive_types = {'security_code': BIGINT, 'date': DATE});
