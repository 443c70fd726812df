-- Reference rows (left joins: an unknown model_id or color_id gives nulls),
-- then one inferred member per vehicle id the facts know and the reference
-- data does not, so no fact is lost and relationships hold.
WITH reference AS (
    SELECT
        v.vehicle_id, m.model, m.make, m.fuel_type, c.color_name, v.model_year,
        FALSE AS is_inferred
    FROM silver_vehicles v
    LEFT JOIN silver_car_models m ON m.model_id = v.model_id
    LEFT JOIN silver_car_colors c ON c.color_id = v.color_id
),
seen AS (
    SELECT vehicle_id FROM fact_telemetry
    UNION
    SELECT vehicle_id FROM fact_fines
)
SELECT * FROM reference
UNION ALL
SELECT
    s.vehicle_id,
    CAST(NULL AS VARCHAR) AS model,
    CAST(NULL AS VARCHAR) AS make,
    CAST(NULL AS VARCHAR) AS fuel_type,
    CAST(NULL AS VARCHAR) AS color_name,
    CAST(NULL AS INT) AS model_year,
    TRUE AS is_inferred
FROM seen s
LEFT JOIN silver_vehicles r ON r.vehicle_id = s.vehicle_id
WHERE r.vehicle_id IS NULL
