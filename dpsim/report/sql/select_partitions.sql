-- select_partitions: a report of a selection sees only its partitions. Creates the temp table {table} that
-- shadows the catalog view of the same name for the rest of the session (aggregates included).
-- {table} is one of sweeps | quality | replay_fidelity | sim_orders | sim_fills (an identifier, not a value).
-- params: $securities  BIGINT[]  security codes (null = every security)
--         $date_lo     DATE      first trading date (null = no bound)
--         $date_hi     DATE      last trading date (null = no bound)
-- Filters on the hive keys prune the partitions' folders before any file is opened.
CREATE OR REPLACE TEMP TABLE {table} AS
SELECT *
FROM main.{table}
WHERE ($securities::BIGINT[] IS NULL OR list_contains($securities::BIGINT[], security_code))
  AND ($date_lo::DATE IS NULL OR date >= $date_lo::DATE)
  AND ($date_hi::DATE IS NULL OR date <= $date_hi::DATE);
