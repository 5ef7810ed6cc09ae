-- +goose Up

-- Secrets: values sealed with AES-256-GCM by the server (package secrets);
-- key_id names the key that sealed them, so that a rotation knows what is left
-- to re-encrypt. The database never sees a value in clear.
CREATE TABLE secrets (
    name         text        PRIMARY KEY,
    key_id       text        NOT NULL,
    sealed       bytea       NOT NULL,
    owner_key_id uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The secrets a version reads, by name.
ALTER TABLE function_versions ADD COLUMN secrets text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE function_versions DROP COLUMN secrets;
DROP TABLE secrets;
