-- quality: the lake's data quality in one row (the quality_summary aggregate).
-- params: none
-- reads:  quality_summary (aggregate)
SELECT * FROM quality_summary;
