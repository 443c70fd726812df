-- One executor for `dag run` and the scheduler (issue 22): what a task
-- waits for without depending on it, which ready task goes first, and the
-- data tests a task ran.

-- Nodes of the same run a task waits for without depending on them: the
-- other inputs of the data tests it runs (a fact's relationships test
-- towards a dimension the fact does not read). Their failure does not
-- skip the task; it skips only the tests that read them.
ALTER TABLE dag.task_runs ADD COLUMN IF NOT EXISTS after text[] NOT NULL DEFAULT '{}';
-- Of two ready tasks, the higher goes first: the length of the longest
-- chain of the run's tasks a task heads (the chain that decides when the
-- run ends starts first).
ALTER TABLE dag.task_runs ADD COLUMN IF NOT EXISTS priority int NOT NULL DEFAULT 0;
-- The data tests the task ran, and how many failed (error severity) or
-- warned.
ALTER TABLE dag.task_runs ADD COLUMN IF NOT EXISTS tests int;
ALTER TABLE dag.task_runs ADD COLUMN IF NOT EXISTS tests_failed int;
ALTER TABLE dag.task_runs ADD COLUMN IF NOT EXISTS tests_warned int;
