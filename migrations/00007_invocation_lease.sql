-- +goose Up

-- The attempt that runs an invocation's function holds a lease on its record,
-- renewed while it runs: another attempt of the same invocation (a workflow task
-- retried while the first one's local activity still runs) waits until the lease
-- is released or expires (its worker died) instead of running the function at
-- the same time.
ALTER TABLE invocations ADD COLUMN lease_token uuid, ADD COLUMN lease_until timestamptz;

-- +goose Down
ALTER TABLE invocations DROP COLUMN lease_token, DROP COLUMN lease_until;
