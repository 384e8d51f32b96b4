-- 0005_telnxo
-- Telnxo's records: numbers, messages and calls (each listed newest first
-- in its workspace and queued by due time on its channel), the carrier
-- ids naming them, WhatsApp windows, usage counters, the parts of
-- concatenated inbound SMS, and carrier reports parked until their
-- message is recorded. Text keys are COLLATE "C" so they order by their
-- bytes, as sled's keys do, whatever the database's locale; listing and
-- queue times are stored as sled's keys hold them (unsigned: before 1970
-- as 1970), so both backends list and queue in the same order.

CREATE TABLE telnxo_numbers (
    number text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX telnxo_numbers_workspace ON telnxo_numbers (workspace_id, number);
SELECT rackwave_tenant_table('telnxo_numbers', 'workspace_id');

CREATE TABLE telnxo_messages (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    channel text COLLATE "C" NOT NULL,
    -- Its place in the workspace's listing: the creation time it was
    -- first stored with, never moved by a later change.
    created_ms bigint NOT NULL,
    -- In its channel's queue, due then; NULL when not queued.
    due_ms bigint,
    record jsonb NOT NULL
);
CREATE INDEX telnxo_messages_listed ON telnxo_messages (workspace_id, created_ms, id);
CREATE INDEX telnxo_messages_due ON telnxo_messages (channel, due_ms, id) WHERE due_ms IS NOT NULL;
SELECT rackwave_tenant_table('telnxo_messages', 'workspace_id');

-- Calls, listed and queued (on the voice channel) as messages are.
CREATE TABLE telnxo_calls (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    created_ms bigint NOT NULL,
    due_ms bigint,
    record jsonb NOT NULL
);
CREATE INDEX telnxo_calls_listed ON telnxo_calls (workspace_id, created_ms, id);
CREATE INDEX telnxo_calls_due ON telnxo_calls (due_ms, id) WHERE due_ms IS NOT NULL;
SELECT rackwave_tenant_table('telnxo_calls', 'workspace_id');

-- The message (and part) a carrier's id names: looked up when a receipt
-- arrives, before its workspace is known.
CREATE TABLE telnxo_carrier_ids (
    channel text COLLATE "C" NOT NULL,
    carrier_id text COLLATE "C" NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    part bigint NOT NULL,
    PRIMARY KEY (channel, carrier_id)
);

-- When a WhatsApp user last wrote to a workspace.
CREATE TABLE telnxo_whatsapp_windows (
    workspace_id text COLLATE "C" NOT NULL,
    customer text COLLATE "C" NOT NULL,
    at_ms bigint NOT NULL,
    PRIMARY KEY (workspace_id, customer)
);
SELECT rackwave_tenant_table('telnxo_whatsapp_windows', 'workspace_id');

-- A workspace's counters (`day:<n>` sends, `<channel>:<period start>`
-- units).
CREATE TABLE telnxo_usage (
    workspace_id text COLLATE "C" NOT NULL,
    counter text COLLATE "C" NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (workspace_id, counter)
);
SELECT rackwave_tenant_table('telnxo_usage', 'workspace_id');

-- The parts of a concatenated inbound SMS received so far. The body is
-- kept as its bytes: text could not carry a NUL a carrier sent.
CREATE TABLE telnxo_inbound_parts (
    message_key text COLLATE "C" NOT NULL,
    seq smallint NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (message_key, seq)
);

-- Carrier reports waiting for their message; ids are time-ordered, so the
-- oldest comes first.
CREATE TABLE telnxo_parked_reports (
    id text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL
);
