-- The workspaces that may not send: every node reads them every two
-- seconds, which this index answers without reading the others.
CREATE INDEX workspaces_suspended ON workspaces (id) WHERE (record ->> 'suspended') IS NOT NULL;
