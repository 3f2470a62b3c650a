-- nfguard console schema, version 1 (SQLite dialect; postgres/0001_init.sql is
-- the same tables, columns and indexes in PostgreSQL's dialect). Times are unix
-- milliseconds (BIGINT), flags are 0/1 BIGINT: one representation for both.

CREATE TABLE workloads (
    id           TEXT PRIMARY KEY,
    cluster      TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);

CREATE TABLE models (
    id                 INTEGER PRIMARY KEY,
    workload_id        TEXT NOT NULL REFERENCES workloads(id),
    container          TEXT NOT NULL,
    digest             TEXT NOT NULL,
    image              TEXT NOT NULL,
    predecessor_id     BIGINT,
    state              TEXT NOT NULL,
    state_since_ms     BIGINT NOT NULL,
    prev_state         TEXT,
    target_mode        TEXT NOT NULL,
    learning_period_ms BIGINT NOT NULL,
    learning_until_ms  BIGINT NOT NULL,
    dry_run_period_ms  BIGINT NOT NULL,
    quiet_period_ms    BIGINT NOT NULL,
    require_approval   BIGINT NOT NULL,
    last_new_ms        BIGINT NOT NULL,
    last_sync_ms       BIGINT NOT NULL,
    version            BIGINT NOT NULL,
    rendered_version   BIGINT NOT NULL,
    rendered           TEXT,
    created_ms         BIGINT NOT NULL,
    UNIQUE (workload_id, container, digest)
);

CREATE TABLE items (
    id            INTEGER PRIMARY KEY,
    model_id      BIGINT NOT NULL REFERENCES models(id),
    kind          TEXT NOT NULL,
    exe           TEXT NOT NULL,
    item_key      TEXT NOT NULL,
    pattern       BIGINT NOT NULL,
    origin        TEXT NOT NULL,
    status        TEXT NOT NULL,
    inherited     BIGINT NOT NULL,
    hits          BIGINT NOT NULL,
    first_seen_ms BIGINT,
    last_seen_ms  BIGINT,
    added_ms      BIGINT NOT NULL,
    added_by      TEXT,
    UNIQUE (model_id, kind, item_key)
);
CREATE INDEX items_by_exe ON items (model_id, kind, exe, pattern);

CREATE TABLE item_pods (
    item_id       BIGINT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    pod           TEXT NOT NULL,
    hits          BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    PRIMARY KEY (item_id, pod)
);

CREATE TABLE pods (
    workload_id   TEXT NOT NULL REFERENCES workloads(id),
    name          TEXT NOT NULL,
    container     TEXT NOT NULL,
    model_id      BIGINT NOT NULL,
    uid           TEXT,
    node          TEXT,
    addresses     TEXT NOT NULL,
    instance      TEXT NOT NULL,
    last_batch    BIGINT NOT NULL,
    mode          TEXT NOT NULL,
    dropped       BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    PRIMARY KEY (workload_id, name, container)
);

CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY,
    workload_id TEXT NOT NULL,
    model_id    BIGINT NOT NULL,
    container   TEXT NOT NULL,
    pod         TEXT NOT NULL,
    tree        TEXT NOT NULL,
    state       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL,
    events      BIGINT NOT NULL,
    opened_ms   BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    state_by    TEXT,
    state_ms    BIGINT
);
CREATE INDEX incidents_by_tree ON incidents (model_id, pod, tree, state);
CREATE INDEX incidents_by_time ON incidents (last_ms);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    instance    TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    incident_id BIGINT NOT NULL,
    model_id    BIGINT NOT NULL,
    pod         TEXT NOT NULL,
    time_ms     BIGINT NOT NULL,
    signature   TEXT NOT NULL,
    folded      BIGINT NOT NULL,
    repeats     BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    body        TEXT,
    UNIQUE (instance, seq)
);
CREATE INDEX events_by_incident ON events (incident_id, signature);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    workload_id TEXT,
    model_id    BIGINT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_by_workload ON audit (workload_id, time_ms);

-- Incidents for the sinks (--incident-webhook), delivered by whichever console
-- claims a row first (a lease: next_ms moves forward while it delivers).
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    incident_id  BIGINT NOT NULL,
    sink         TEXT NOT NULL,
    body         TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_ms      BIGINT NOT NULL,
    delivered_ms BIGINT
);
CREATE INDEX outbox_due ON outbox (delivered_ms, next_ms);

CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    scope      TEXT,
    created_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
