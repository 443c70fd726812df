WITH alerts AS (
    SELECT
        t.vehicle_id, t.speed_kmh, t.gear, t.rpm, v.color_name,
        -- [k*15 min, (k+1)*15 min) on the UTC epoch, in microseconds
        CAST(CAST(FLOOR(EXTRACT(EPOCH FROM t.event_time) / 900) AS BIGINT) * 900000000 AS TIMESTAMP) AS window_start
    FROM fact_telemetry t
    LEFT JOIN dim_vehicle v ON v.vehicle_id = t.vehicle_id
    WHERE t.is_speeding OR t.is_gear_mismatch OR t.is_over_rev
),
cars AS (
    SELECT DISTINCT window_start, vehicle_id, color_name FROM alerts
),
colors AS (
    SELECT
        window_start,
        SUM(CASE WHEN color_name = 'black' THEN 1 ELSE 0 END) AS black_cars,
        SUM(CASE WHEN color_name = 'white' THEN 1 ELSE 0 END) AS white_cars,
        SUM(CASE WHEN color_name = 'silver' THEN 1 ELSE 0 END) AS silver_cars
    FROM cars
    GROUP BY window_start
),
stats AS (
    SELECT
        window_start,
        COUNT(*) AS alert_events,
        MAX(speed_kmh) AS max_speed_kmh,
        MAX(gear) AS max_gear,
        MAX(rpm) AS max_rpm
    FROM alerts
    GROUP BY window_start
)
SELECT
    s.window_start, s.alert_events, c.black_cars, c.white_cars, c.silver_cars,
    s.max_speed_kmh, s.max_gear, s.max_rpm
FROM stats s
JOIN colors c ON c.window_start = s.window_start
