WITH telemetry AS (
    -- Counts and sums per (driver, day), kept by int_driver_daily_telemetry.
    SELECT
        driver_id,
        event_date,
        events,
        max_speed_kmh,
        speed_sum_kmh / events AS avg_speed_kmh,
        alert_events
    FROM int_driver_daily_telemetry
),
fines AS (
    SELECT
        driver_id,
        CAST(issued_at AS DATE) AS event_date,
        COUNT(*) AS fines_count,
        SUM(amount_eur) AS fines_eur
    FROM fact_fines
    WHERE driver_id IS NOT NULL
    GROUP BY driver_id, CAST(issued_at AS DATE)
)
SELECT
    COALESCE(t.driver_id, f.driver_id) AS driver_id,
    COALESCE(t.event_date, f.event_date) AS event_date,
    COALESCE(t.events, 0) AS events,
    t.max_speed_kmh,
    t.avg_speed_kmh,
    COALESCE(t.alert_events, 0) AS alert_events,
    COALESCE(f.fines_count, 0) AS fines_count,
    COALESCE(f.fines_eur, 0) AS fines_eur
FROM telemetry t
FULL OUTER JOIN fines f
    ON f.driver_id = t.driver_id AND f.event_date = t.event_date
