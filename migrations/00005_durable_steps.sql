-- +goose Up

-- Durable functions (docs/ARCHITECTURE.md, "Durable functions"): an invocation
-- suspended in a wait or a callback is 'waiting'; its checkpoints are rows of
-- invocation_steps, written by the worker's Run activity as the handler reaches them.
ALTER TABLE invocations DROP CONSTRAINT invocations_status_check;
ALTER TABLE invocations ADD CONSTRAINT invocations_status_check
    CHECK (status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'timeout', 'cancelled'));

CREATE TABLE invocation_steps (
    invocation_id uuid        NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    seq           integer     NOT NULL,  -- order of first record within the invocation
    kind          text        NOT NULL CHECK (kind IN ('step', 'wait', 'callback', 'invoke')),
    status        text        NOT NULL CHECK (status IN ('started', 'succeeded', 'failed', 'timed_out')),
    result        json,                  -- NULL when stored by reference (result_ref)
    result_ref    text,                  -- object store key of a result over the inline limit
    result_size   integer     NOT NULL DEFAULT 0,
    error         jsonb,
    attempts      integer     NOT NULL DEFAULT 1,
    duration_ms   double precision NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    wait_until    timestamptz,           -- wait: when it ends; callback: its timeout
    token_hash    bytea,                 -- callback: sha256 of its token
    PRIMARY KEY (invocation_id, name)
);
CREATE UNIQUE INDEX invocation_steps_token ON invocation_steps (token_hash) WHERE token_hash IS NOT NULL;

-- +goose Down
DROP TABLE invocation_steps;
UPDATE invocations SET status = 'running' WHERE status = 'waiting';
ALTER TABLE invocations DROP CONSTRAINT invocations_status_check;
ALTER TABLE invocations ADD CONSTRAINT invocations_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'timeout', 'cancelled'));
