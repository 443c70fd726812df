-- Alerts (`[[alerts]]` in dag.toml): every alert dag raised, whether it
-- was delivered, and how many tries it took. A row is written before the
-- first delivery attempt, so an alert whose process died before it got
-- through is sent again by the next scheduler (at least once); one held
-- back by its rule's cooldown is kept as 'suppressed'.
CREATE TABLE IF NOT EXISTS dag.alerts (
    id bigserial PRIMARY KEY,
    -- The [[alerts]] entry (its name) and what raised it.
    rule text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('run_failed', 'test_failed', 'test_warned',
                                       'freshness', 'ingester_down')),
    -- What the alert is about (a test, a run's selector, a source): the
    -- cooldown holds per rule, kind and subject.
    subject text NOT NULL,
    run text,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'suppressed', 'failed')),
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX IF NOT EXISTS alerts_recent ON dag.alerts (rule, kind, subject, created_at);
CREATE INDEX IF NOT EXISTS alerts_pending ON dag.alerts (state) WHERE state = 'pending';
