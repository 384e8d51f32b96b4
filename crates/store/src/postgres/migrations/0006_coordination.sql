-- What nodes agree on through the database: named leases (one node at a
-- time runs the billing cycle) and the quota units each day's counters
-- have handed out (taken in blocks by the nodes, never more than the cap
-- together).

CREATE TABLE leases (
    name text COLLATE "C" PRIMARY KEY,
    holder text NOT NULL,
    until_ms bigint NOT NULL
);

CREATE TABLE quota_claims (
    counter text COLLATE "C" NOT NULL,
    day bigint NOT NULL,
    used bigint NOT NULL,
    -- What the latest claim took (its statement's answer).
    last_grant bigint NOT NULL,
    PRIMARY KEY (counter, day)
);
