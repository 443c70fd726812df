-- The warehouse copy of the telematics gold models (models/telematics/gold):
-- one table per model marked `warehouse: true`, the spec's types, the
-- models' unique keys as primary keys. `dag load` checks every table against
-- its model before writing a row. Never edit after it is applied: add a
-- migration.
CREATE SCHEMA IF NOT EXISTS gold;

-- One row per valid, distinct telemetry event, with alert flags.
CREATE TABLE gold.fact_telemetry (
    event_id text NOT NULL,
    vehicle_id text NOT NULL,
    driver_id text NOT NULL,
    event_time timestamptz NOT NULL,
    event_date date NOT NULL,
    speed_kmh double precision NOT NULL,
    rpm integer NOT NULL,
    gear integer NOT NULL,
    expected_gear integer NOT NULL,
    is_speeding boolean NOT NULL,
    is_gear_mismatch boolean NOT NULL,
    is_over_rev boolean NOT NULL,
    PRIMARY KEY (event_id)
);

-- One row per valid, distinct fine, attributed to the vehicle's driver at issue time.
CREATE TABLE gold.fact_fines (
    fine_id text NOT NULL,
    vehicle_id text NOT NULL,
    driver_id text,
    issued_at timestamptz NOT NULL,
    amount_eur numeric(14,2) NOT NULL,
    over_limit_kmh double precision NOT NULL,
    PRIMARY KEY (fine_id)
);

-- Per driver and UTC day, telemetry and fines; late events update their day.
CREATE TABLE gold.agg_driver_daily (
    driver_id text NOT NULL,
    event_date date NOT NULL,
    events bigint NOT NULL,
    max_speed_kmh double precision,
    avg_speed_kmh double precision,
    alert_events bigint NOT NULL,
    fines_count bigint NOT NULL,
    fines_eur numeric(14,2) NOT NULL,
    PRIMARY KEY (driver_id, event_date)
);

-- 15-minute tumbling windows (UTC epoch) with at least one alert event.
CREATE TABLE gold.agg_alerts_15min (
    window_start timestamptz NOT NULL,
    alert_events bigint NOT NULL,
    black_cars bigint NOT NULL,
    white_cars bigint NOT NULL,
    silver_cars bigint NOT NULL,
    max_speed_kmh double precision NOT NULL,
    max_gear integer NOT NULL,
    max_rpm integer NOT NULL,
    PRIMARY KEY (window_start)
);

-- Every reference driver, plus an inferred member for each unknown driver seen in the facts.
CREATE TABLE gold.dim_driver (
    driver_id text NOT NULL,
    full_name text,
    license_class text,
    home_city text,
    is_inferred boolean NOT NULL,
    PRIMARY KEY (driver_id)
);

-- Every reference vehicle, plus an inferred member for each unknown vehicle seen in the facts.
CREATE TABLE gold.dim_vehicle (
    vehicle_id text NOT NULL,
    model text,
    make text,
    fuel_type text,
    color_name text,
    model_year integer,
    is_inferred boolean NOT NULL,
    PRIMARY KEY (vehicle_id)
);
