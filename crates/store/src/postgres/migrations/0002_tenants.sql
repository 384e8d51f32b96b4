-- What a workspace holds besides its credentials (0001): suppressed
-- addresses and the API's idempotency keys. Text keys compare bytewise
-- (COLLATE "C"), as on sled, whatever the database's locale.

CREATE TABLE suppressions (
    workspace_id text COLLATE "C" NOT NULL,
    address text COLLATE "C" NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (workspace_id, address)
);
SELECT rackwave_tenant_table('suppressions', 'workspace_id');

CREATE TABLE idempotency_keys (
    workspace_id text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    created_at_ms bigint NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
-- Retention deletes the oldest first.
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at_ms);
SELECT rackwave_tenant_table('idempotency_keys', 'workspace_id');
