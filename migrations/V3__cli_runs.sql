-- `dag run` records its runs too (when a database is configured), with
-- trigger 'cli': the same runs and task_runs rows a scheduler's runs have,
-- so that `dag runs`, `dag status` and the UI show both.
ALTER TABLE dag.runs DROP CONSTRAINT IF EXISTS runs_trigger_check;
ALTER TABLE dag.runs ADD CONSTRAINT runs_trigger_check
    CHECK (trigger IN ('manual', 'schedule', 'cli'));
