-- participants: the participant league table for one scenario.
-- Grain: one row per participant with sweeps, largest notional first.
-- params: $scenario  VARCHAR  the scenario
--         $min_n     INTEGER  stats.min_segment_n: fewer sweeps and the row is flagged `small`
-- reads:  by_participant (aggregate), participant_names (temp table: the reference, or empty)
-- Columns: participantid, name (null without the reference), n_sweeps, notional_aud, real_is_bps,
--          sim_is_bps, delta_is_bps (notional-weighted), fill_ratio, sim_fill_ratio, small
SELECT
    b.participantid,
    n.participantname                        AS name,
    b.n_sweeps,
    b.notional / 1000                        AS notional_aud,
    b.nw_implementation_shortfall_bps        AS real_is_bps,
    b.nw_sim_implementation_shortfall_bps    AS sim_is_bps,
    b.nw_delta_implementation_shortfall_bps  AS delta_is_bps,
    b.fill_ratio,
    b.sim_fill_ratio,
    b.n_sweeps < $min_n                      AS small
FROM by_participant AS b
LEFT JOIN participant_names AS n ON n.participantid = b.participantid
WHERE b.scenario = $scenario
ORDER BY b.notional DESC NULLS LAST, b.participantid;
