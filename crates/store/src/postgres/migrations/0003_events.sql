-- The event log, its daily counts, named positions and the webhook outbox.
--
-- An event is kept as the envelope exactly as it was serialized (text,
-- not jsonb, which would reorder its keys), beside the columns its
-- listings filter on.

-- Positions in the log and of deliveries: increasing in the order they
-- were stored, across workspaces (sled's generated ids).
CREATE SEQUENCE rackwave_seq;

CREATE TABLE events (
    seq bigint PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL UNIQUE,
    at_ms bigint NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    product text COLLATE "C",
    message_id text COLLATE "C",
    envelope text NOT NULL
);
CREATE INDEX events_workspace ON events (workspace_id, seq);
CREATE INDEX events_message ON events (workspace_id, message_id, seq) WHERE message_id IS NOT NULL;
CREATE INDEX events_age ON events (at_ms);
SELECT rackwave_tenant_table('events', 'workspace_id');

-- Per UTC day, tag ('' for all) and type: the stats without a scan.
CREATE TABLE event_counts (
    workspace_id text COLLATE "C" NOT NULL,
    day bigint NOT NULL,
    tag text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (workspace_id, day, tag, event_type)
);
SELECT rackwave_tenant_table('event_counts', 'workspace_id');

-- Named positions (the service's own, not a tenant's).
CREATE TABLE cursors (
    name text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE endpoints (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    created_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX endpoints_workspace ON endpoints (workspace_id, created_at_ms);
SELECT rackwave_tenant_table('endpoints', 'workspace_id');

CREATE TABLE deliveries (
    id text COLLATE "C" PRIMARY KEY,
    endpoint_id text COLLATE "C" NOT NULL,
    workspace_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    state text COLLATE "C" NOT NULL,
    created_at_ms bigint NOT NULL,
    -- Set exactly while an attempt is due (the outbox's queue).
    due_at_ms bigint,
    record jsonb NOT NULL
);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, seq);
CREATE INDEX deliveries_due ON deliveries (endpoint_id, due_at_ms, id) WHERE due_at_ms IS NOT NULL;
CREATE INDEX deliveries_age ON deliveries (created_at_ms);
SELECT rackwave_tenant_table('deliveries', 'workspace_id');
