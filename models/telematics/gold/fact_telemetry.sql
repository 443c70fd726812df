-- One row per valid telemetry event (silver already deduplicated on
-- event_id), with the alert flags of the spec.
WITH geared AS (
    SELECT
        event_id, vehicle_id, driver_id, event_time, event_date, speed_kmh, rpm, gear,
        -- round half away from zero (speeds are >= 0, so floor(x + 0.5)), then clamp
        CASE
            WHEN speed_kmh = 0 THEN 0
            ELSE LEAST(GREATEST(CAST(FLOOR(speed_kmh / 30 + 0.5) AS INT), 1), 7)
        END AS expected_gear
    FROM silver_telemetry
)
SELECT
    event_id, vehicle_id, driver_id, event_time, event_date, speed_kmh, rpm, gear,
    expected_gear,
    speed_kmh > 120 AS is_speeding,
    (speed_kmh > 0 AND gear <> expected_gear) AS is_gear_mismatch,
    rpm > 6000 AS is_over_rev
FROM geared
