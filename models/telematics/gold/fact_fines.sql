-- fines_with_driver is the as-of join declared in fact_fines.yml.
SELECT
    fine_id,
    vehicle_id,
    driver_id,
    issued_at,
    amount_eur,
    speed_kmh - limit_kmh AS over_limit_kmh
FROM fines_with_driver
