-- Per driver and UTC day, the telemetry sums agg_driver_daily is built
-- from. Run over new events only, each column folds into the stored row
-- of its (driver, day) as the YAML's `accumulate` says.
SELECT
    driver_id,
    event_date,
    COUNT(*) AS events,
    SUM(speed_kmh) AS speed_sum_kmh,
    MAX(speed_kmh) AS max_speed_kmh,
    SUM(CASE WHEN is_speeding OR is_gear_mismatch OR is_over_rev THEN 1 ELSE 0 END) AS alert_events
FROM fact_telemetry
GROUP BY driver_id, event_date
