-- +goose Up

-- How many times an invocation's function was started: 1 normally, more after a
-- retry the function asked for (retries: N) or a re-execution after its worker
-- died mid-run. 0 for records older than this column or never started.
ALTER TABLE invocations ADD COLUMN attempts integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE invocations DROP COLUMN attempts;
