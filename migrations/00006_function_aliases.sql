-- +goose Up

-- Named aliases of a function's versions (prod, canary). An alias points at a
-- version, or at two with the weight of the additional one; previous is the
-- target before the last change, for a rollback. Aliases belong to the
-- function's identity and go with it.
CREATE TABLE function_aliases (
    function_id        uuid             NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    name               text             NOT NULL,
    version            integer          NOT NULL CHECK (version >= 1),
    additional_version integer          CHECK (additional_version >= 1 AND additional_version <> version),
    additional_weight  double precision NOT NULL DEFAULT 0
                       CHECK (additional_weight >= 0 AND additional_weight < 1),
    previous           jsonb,
    description        text             NOT NULL DEFAULT '',
    created_at         timestamptz      NOT NULL DEFAULT now(),
    updated_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (function_id, name)
);

-- +goose Down
DROP TABLE function_aliases;
