WITH seen AS (
    SELECT driver_id FROM fact_telemetry
    UNION
    SELECT driver_id FROM fact_fines WHERE driver_id IS NOT NULL
)
SELECT driver_id, full_name, license_class, home_city, FALSE AS is_inferred
FROM silver_drivers
UNION ALL
SELECT
    s.driver_id,
    CAST(NULL AS VARCHAR) AS full_name,
    CAST(NULL AS VARCHAR) AS license_class,
    CAST(NULL AS VARCHAR) AS home_city,
    TRUE AS is_inferred
FROM seen s
LEFT JOIN silver_drivers r ON r.driver_id = s.driver_id
WHERE r.driver_id IS NULL
