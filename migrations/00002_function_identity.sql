-- +goose Up

-- A function's identity. A delete and a re-create under the same name make a new
-- function with a new id, so nothing keyed by id (worker caches, warm containers,
-- idempotency keys, schedules, stored code) of the deleted one serves the new one.
ALTER TABLE functions ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE functions ADD CONSTRAINT functions_id_key UNIQUE (id);

ALTER TABLE function_versions ADD COLUMN function_id uuid;
UPDATE function_versions v SET function_id = f.id FROM functions f WHERE f.name = v.function;
ALTER TABLE function_versions ALTER COLUMN function_id SET NOT NULL;

-- Invocations of functions deleted before this migration keep a NULL identity.
ALTER TABLE invocations ADD COLUMN function_id uuid;
UPDATE invocations i SET function_id = f.id FROM functions f WHERE f.name = i.function;

-- Idempotency keys belong to one function identity, and remember what was asked
-- (request_hash) so that a reuse with another request is refused.
ALTER TABLE invocations ADD COLUMN request_hash text;
DROP INDEX invocations_idempotency;
CREATE UNIQUE INDEX invocations_idempotency ON invocations (function_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

ALTER TABLE chain_runs ADD COLUMN request_hash text;

-- +goose Down
ALTER TABLE chain_runs DROP COLUMN request_hash;
DROP INDEX invocations_idempotency;
ALTER TABLE invocations DROP COLUMN request_hash;
ALTER TABLE invocations DROP COLUMN function_id;
CREATE UNIQUE INDEX invocations_idempotency ON invocations (function, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE function_versions DROP COLUMN function_id;
ALTER TABLE functions DROP COLUMN id;
