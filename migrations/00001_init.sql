-- +goose Up

-- Functions and their immutable versions. latest_version is the version counter:
-- a deploy bumps it under the row lock, which makes version numbers gap-free.
CREATE TABLE functions (
    name           text        PRIMARY KEY,
    description    text        NOT NULL DEFAULT '',
    latest_version integer     NOT NULL CHECK (latest_version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE function_versions (
    function    text        NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version >= 1),
    runtime     text        NOT NULL CHECK (runtime IN ('python', 'nodejs', 'go')),
    handler     text        NOT NULL,
    checksum    text        NOT NULL,
    code_size   bigint      NOT NULL CHECK (code_size >= 0),
    code_key    text        NOT NULL,
    limits      jsonb       NOT NULL,
    env         jsonb       NOT NULL DEFAULT '{}',
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function, version)
);

-- Deleting a function asks whether any other version still uses its code.
CREATE INDEX function_versions_code_key ON function_versions (code_key);

-- Invocations keep no foreign key to functions: history outlives a deleted function.
-- event and result are json (not jsonb) so a user's payload comes back byte for byte.
CREATE TABLE invocations (
    id              uuid        PRIMARY KEY,
    function        text        NOT NULL,
    version         integer     NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'timeout', 'cancelled')),
    event           json,
    result          json,
    error           jsonb,
    metrics         jsonb,
    logs            text        NOT NULL DEFAULT '',
    idempotency_key text,
    retry_of        uuid,
    chain_run_id    uuid,
    workflow_id     text        NOT NULL DEFAULT '',
    run_id          text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);

CREATE UNIQUE INDEX invocations_idempotency ON invocations (function, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX invocations_created ON invocations (created_at DESC, id DESC);
CREATE INDEX invocations_function_created ON invocations (function, created_at DESC, id DESC);
CREATE INDEX invocations_status_created ON invocations (status, created_at DESC, id DESC);
-- "failed invocations of f": a rare status would otherwise scan all of f's rows.
CREATE INDEX invocations_function_status_created ON invocations (function, status, created_at DESC, id DESC);
CREATE INDEX invocations_chain_run ON invocations (chain_run_id, created_at DESC, id DESC)
    WHERE chain_run_id IS NOT NULL;

-- API keys: only a hash of the secret is stored.
CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    hash         bytea       NOT NULL UNIQUE,
    role         text        NOT NULL CHECK (role IN ('admin', 'developer', 'invoker')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Per-function grants. No foreign key to functions: a grant may precede the first deploy.
CREATE TABLE function_permissions (
    key_id     uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    function   text NOT NULL,
    permission text NOT NULL CHECK (permission IN ('read', 'write', 'execute', 'admin')),
    PRIMARY KEY (key_id, function, permission)
);

-- Chains are versioned like functions.
CREATE TABLE chains (
    name           text        PRIMARY KEY,
    latest_version integer     NOT NULL CHECK (latest_version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chain_versions (
    chain      text        NOT NULL REFERENCES chains (name) ON DELETE CASCADE,
    version    integer     NOT NULL CHECK (version >= 1),
    definition jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, version)
);

-- Chain runs, like invocations, outlive their chain.
CREATE TABLE chain_runs (
    id              uuid        PRIMARY KEY,
    chain           text        NOT NULL,
    version         integer     NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'timeout', 'cancelled')),
    input           json,
    output          json,
    error           jsonb,
    steps           jsonb       NOT NULL DEFAULT '[]',
    idempotency_key text,
    workflow_id     text        NOT NULL DEFAULT '',
    run_id          text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);

CREATE UNIQUE INDEX chain_runs_idempotency ON chain_runs (chain, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX chain_runs_chain_created ON chain_runs (chain, created_at DESC, id DESC);
CREATE INDEX chain_runs_status_created ON chain_runs (status, created_at DESC, id DESC);

-- +goose Down
DROP TABLE chain_runs;
DROP TABLE chain_versions;
DROP TABLE chains;
DROP TABLE function_permissions;
DROP TABLE api_keys;
DROP TABLE invocations;
DROP TABLE function_versions;
DROP TABLE functions;
