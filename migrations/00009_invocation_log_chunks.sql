-- +goose Up

-- The output of running invocations, stored by the worker as it comes so that
-- GET /v1/invocations/{id}/logs?follow=true can stream it from any API
-- process. stream names one run of the function (an attempt), "offset" is the
-- bytes of that run's output before the chunk. The final record's logs
-- replace the chunks: FinishInvocation deletes them.
CREATE TABLE invocation_log_chunks (
    invocation_id uuid NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    stream uuid NOT NULL,
    "offset" integer NOT NULL,
    text text NOT NULL,
    PRIMARY KEY (invocation_id, seq)
);

-- +goose Down
DROP TABLE invocation_log_chunks;
