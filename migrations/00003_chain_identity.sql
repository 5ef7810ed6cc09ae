-- +goose Up

-- A chain's identity, as functions have one (00002): a chain deleted and created
-- again under its name is another chain, and the deleted one's runs are not
-- shown through the new one's versions and grants.
ALTER TABLE chains ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE chains ADD CONSTRAINT chains_id_key UNIQUE (id);

ALTER TABLE chain_versions ADD COLUMN chain_id uuid;
UPDATE chain_versions v SET chain_id = c.id FROM chains c WHERE c.name = v.chain;
ALTER TABLE chain_versions ALTER COLUMN chain_id SET NOT NULL;

-- Runs of chains deleted before this migration keep a NULL identity.
ALTER TABLE chain_runs ADD COLUMN chain_id uuid;
UPDATE chain_runs r SET chain_id = c.id FROM chains c WHERE c.name = r.chain;

-- +goose Down
ALTER TABLE chain_runs DROP COLUMN chain_id;
ALTER TABLE chain_versions DROP COLUMN chain_id;
ALTER TABLE chains DROP COLUMN id;
