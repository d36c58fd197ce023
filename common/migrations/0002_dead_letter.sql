-- A job delivered more than MAX_ATTEMPTS times without completing is stored as `dead`
-- (the worker's dead-letter; a copy of the job stays in the `:dead` stream).
ALTER TABLE task_results DROP CONSTRAINT IF EXISTS task_results_status_check;
ALTER TABLE task_results ADD CONSTRAINT task_results_status_check
    CHECK (status IN ('done', 'failed', 'dead'));
