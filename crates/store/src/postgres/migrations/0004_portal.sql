-- The portal's records: clients and their logins, subscriptions,
-- invoices, payments, credit notes, the notices waiting to be mailed,
-- sign-on tokens, platform sessions and the audit trail. They belong to
-- clients, not workspaces: no row-level policy, the portal works in the
-- service's scope. Each record is stored whole (jsonb) beside the
-- columns its lookups and indexes need; text keys compare bytewise
-- (COLLATE "C"), as on sled, whatever the database's locale. Times in
-- an index column (ending_ms, next_action_ms) before 1970 are kept as
-- 1970, the order sled's time indexes give them.

CREATE TABLE clients (
    id text COLLATE "C" PRIMARY KEY,
    -- Lowercase; never changes once the client is added.
    email text COLLATE "C" NOT NULL UNIQUE,
    record jsonb NOT NULL
);

-- Logins, reset links, sign-on tokens and platform sessions: kept by
-- their token's digest until they expire (pruned by expires_at_ms).
CREATE TABLE client_sessions (
    digest text COLLATE "C" PRIMARY KEY,
    expires_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX client_sessions_expiry ON client_sessions (expires_at_ms);

CREATE TABLE password_resets (
    digest text COLLATE "C" PRIMARY KEY,
    expires_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX password_resets_expiry ON password_resets (expires_at_ms);

CREATE TABLE sso_tokens (
    digest text COLLATE "C" PRIMARY KEY,
    expires_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX sso_tokens_expiry ON sso_tokens (expires_at_ms);

CREATE TABLE platform_sessions (
    digest text COLLATE "C" PRIMARY KEY,
    expires_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX platform_sessions_expiry ON platform_sessions (expires_at_ms);

CREATE TABLE subscriptions (
    id text COLLATE "C" PRIMARY KEY,
    -- Never changes.
    client_id text COLLATE "C" NOT NULL,
    created_at_ms bigint NOT NULL,
    -- The period's end while the subscription is live (trial, active),
    -- NULL otherwise: the billing run's work.
    ending_ms bigint,
    record jsonb NOT NULL
);
CREATE INDEX subscriptions_of_client ON subscriptions (client_id, created_at_ms, id);
CREATE INDEX subscriptions_ending ON subscriptions (ending_ms, id) WHERE ending_ms IS NOT NULL;

-- A workspace's subscription: the last one put that was not cancelled
-- then (a cancelled client's new start takes its old workspace back).
CREATE TABLE workspace_subscriptions (
    workspace_id text COLLATE "C" PRIMARY KEY,
    subscription_id text COLLATE "C" NOT NULL
);

-- Invoice and credit note numbers: one set, each used once, whichever
-- document took it.
CREATE TABLE document_numbers (
    number text COLLATE "C" PRIMARY KEY,
    document_id text COLLATE "C" NOT NULL
);

CREATE TABLE invoices (
    id text COLLATE "C" PRIMARY KEY,
    -- Its client and number never change.
    number text COLLATE "C" NOT NULL,
    client_id text COLLATE "C" NOT NULL,
    issued_at_ms bigint NOT NULL,
    -- When the dunning next looks at it: its work.
    next_action_ms bigint,
    record jsonb NOT NULL
);
CREATE INDEX invoices_of_client ON invoices (client_id);
CREATE INDEX invoices_due ON invoices (next_action_ms, id) WHERE next_action_ms IS NOT NULL;

CREATE TABLE payments (
    id text COLLATE "C" PRIMARY KEY,
    -- The gateway's or the operator's: a replayed callback counts once.
    reference text COLLATE "C" NOT NULL UNIQUE,
    invoice_id text COLLATE "C" NOT NULL,
    received_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX payments_of_invoice ON payments (invoice_id);

CREATE TABLE credit_notes (
    id text COLLATE "C" PRIMARY KEY,
    number text COLLATE "C" NOT NULL,
    invoice_id text COLLATE "C" NOT NULL,
    issued_at_ms bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX credit_notes_of_invoice ON credit_notes (invoice_id);

-- Notifications to mail, numbered in the order they were queued.
CREATE TABLE notices (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record jsonb NOT NULL
);

-- Ids are time-ordered: the newest entries sort last.
CREATE TABLE audit_entries (
    id text COLLATE "C" PRIMARY KEY,
    record jsonb NOT NULL
);
