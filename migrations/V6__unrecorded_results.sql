-- Test results are recorded once per run (issue 24): a task keeps its
-- tests' results here when it finishes, and the run's load (or whoever
-- ends the run) appends all of them to the lake's results table in one
-- commit, then clears them. A Delta commit per task cost 0.06-0.13 s on
-- the run's critical path.
ALTER TABLE dag.task_runs ADD COLUMN IF NOT EXISTS unrecorded_results jsonb;
