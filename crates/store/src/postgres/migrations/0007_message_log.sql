-- The message log every node shares: each node's feed consumer puts the
-- spool's record of a message that changed, so listings and a message's
-- page answer the same from any node. The spool's record is kept as its
-- JSON text, as the node wrote it (a record may hold what jsonb refuses,
-- an escaped NUL), beside the columns its listings filter on.
CREATE TABLE message_log (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    queue_id text COLLATE "C" NOT NULL,
    -- Sender and recipient as given, and lowercase as listings compare them.
    sender text NOT NULL,
    recipient text NOT NULL,
    to_key text COLLATE "C" NOT NULL,
    from_key text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    tags text[] NOT NULL,
    -- Creation time as listings order it (before 1970 as 1970).
    created_ms bigint NOT NULL,
    created_at_ms bigint NOT NULL,
    finished_at_ms bigint,
    node text NOT NULL,
    record text NOT NULL
);
CREATE INDEX message_log_workspace ON message_log (workspace_id, created_ms, id);
CREATE INDEX message_log_recipient ON message_log (workspace_id, to_key, created_ms, id);
CREATE INDEX message_log_queue ON message_log (queue_id, id);
CREATE INDEX message_log_finished ON message_log (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
-- What waits in the queues of all nodes, per workspace (the dashboard's count).
CREATE INDEX message_log_pending ON message_log (workspace_id) WHERE finished_at_ms IS NULL;
SELECT rackwave_tenant_table('message_log', 'workspace_id');
