-- Run state of the scheduler (dag scheduler, dag trigger, dag runs,
-- dag status). Several schedulers share one database: a task is claimed
-- with a row lock (SKIP LOCKED) and a lease that its scheduler renews; a
-- lease that runs out hands the task to another scheduler.

-- One run of a selection: triggered by hand or fired by a schedule.
CREATE TABLE IF NOT EXISTS dag.runs (
    id bigserial PRIMARY KEY,
    selector text NOT NULL,
    trigger text NOT NULL CHECK (trigger IN ('manual', 'schedule')),
    -- For scheduled runs: the schedule (its selector and cron) and the
    -- instant it fired for; a fire time makes at most one run, however
    -- many schedulers saw it.
    schedule text,
    scheduled_for timestamptz,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'success', 'failed', 'skipped')),
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    UNIQUE (schedule, scheduled_for)
);
CREATE INDEX IF NOT EXISTS runs_open ON dag.runs (state) WHERE state IN ('queued', 'running');

-- One node of a run. `upstream` names the nodes of the same run it waits
-- for.
CREATE TABLE IF NOT EXISTS dag.task_runs (
    run_id bigint NOT NULL REFERENCES dag.runs ON DELETE CASCADE,
    node text NOT NULL,
    upstream text[] NOT NULL DEFAULT '{}',
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'success', 'failed',
                         'upstream_failed', 'skipped', 'up_for_retry')),
    attempt int NOT NULL DEFAULT 0,
    max_attempts int NOT NULL,
    next_attempt_at timestamptz,
    claimed_by text,
    lease_until timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    seconds double precision,
    rows_in bigint,
    rows_out bigint,
    delta_version bigint,
    error text,
    PRIMARY KEY (run_id, node)
);
CREATE INDEX IF NOT EXISTS task_runs_open ON dag.task_runs (state)
    WHERE state IN ('queued', 'up_for_retry', 'running');

-- Every execution of a task, whoever ran it and however it ended: the
-- audit trail that shows no task ran twice.
CREATE TABLE IF NOT EXISTS dag.task_attempts (
    run_id bigint NOT NULL,
    node text NOT NULL,
    attempt int NOT NULL,
    scheduler text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome text,
    PRIMARY KEY (run_id, node, attempt)
);

-- Live schedulers: a heartbeat every few seconds.
CREATE TABLE IF NOT EXISTS dag.schedulers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
