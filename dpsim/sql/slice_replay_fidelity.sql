-- slice_replay_fidelity: the columns of results/replay_fidelity that the partial aggregates read, from one
-- slice's files.
-- Grain: one row per partition of the files.
-- params: $files  VARCHAR[]  the slice's results/replay_fidelity files (security_code, date from the hive path)
-- reads:  the files
-- Columns: security_code, date, real_cp_quantity, reproduced_quantity, fidelity
SELECT security_code, date, real_cp_quantity, reproduced_quantity, fidelity
FROM read_parquet($files::VARCHAR[], hive_partitioning = true,
                  hive_types = {'security_code': BIGINT, 'date': DATE});
