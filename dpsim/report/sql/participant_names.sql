-- participant_names: the participants reference (lake/reference/participants.parquet), one name per id.
-- Grain: one row per participantid. Used only when the lake has the reference with both columns.
-- params: none
-- reads:  participants (catalog view)
CREATE OR REPLACE TEMP TABLE participant_names AS
SELECT participantid::BIGINT AS participantid, min(participantname::VARCHAR) AS participantname
FROM participants
GROUP BY participantid;
