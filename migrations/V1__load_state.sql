-- Load state of the warehouse (schema dag, created before the migrations
-- run because refinery keeps its history there, in dag.schema_history).
-- IF NOT EXISTS throughout: a warehouse migrated by an older dag (history in
-- dag.refinery_schema_history) already holds these tables.

-- The Delta version of each gold table the warehouse holds. Written in the
-- same transaction as the rows, so a repeated or resumed load is a no-op.
CREATE TABLE IF NOT EXISTS dag.loaded_versions (
    model text PRIMARY KEY,
    delta_version bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);

-- One row per model per load that changed something: what it moved.
CREATE TABLE IF NOT EXISTS dag.load_history (
    load_id uuid NOT NULL,
    model text NOT NULL,
    from_version bigint,
    to_version bigint NOT NULL,
    mode text NOT NULL CHECK (mode IN ('initial', 'full', 'changes')),
    inserted bigint NOT NULL,
    updated bigint NOT NULL,
    deleted bigint NOT NULL,
    seconds double precision NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (load_id, model)
);
