-- The tenant policy, worded so the planner estimates it keeps the rows
-- it keeps (all of them, in the scope they belong to): the plain
-- function call is estimated at a fraction of a percent, and a listing
-- of a large workspace then sorted every row instead of walking its
-- index (245 ms against 1.7 ms at 300,000 messages).
CREATE OR REPLACE FUNCTION rackwave_tenant_table(tbl regclass, workspace_column text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant ON %s USING ((CASE WHEN rackwave_admits(%I) THEN true END) IS NOT NULL) WITH CHECK (rackwave_admits(%I))',
        tbl, workspace_column, workspace_column);
END
$$;
ALTER POLICY tenant ON workspaces USING ((CASE WHEN rackwave_admits(id) THEN true END) IS NOT NULL);
ALTER POLICY tenant ON smtp_accounts USING ((CASE WHEN rackwave_admits(workspace_id) THEN true END) IS NOT NULL);
ALTER POLICY tenant ON api_keys USING ((CASE WHEN rackwave_admits(workspace_id) THEN true END) IS NOT NULL);
ALTER POLICY tenant ON sender_domains USING ((CASE WHEN rackwave_admits(workspace_id) THEN true END) IS NOT NULL);

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
