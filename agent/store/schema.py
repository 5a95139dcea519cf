"""Schema migrations, in order; a version is never edited once released."""

MIGRATIONS = [
    (1, """
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('sk', 'pk', 'tk')),
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    scopes TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    expires REAL,
    revoked REAL,
    last_used REAL
);
CREATE TABLE capture_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    stopped REAL,
    backend TEXT NOT NULL,
    source TEXT NOT NULL,
    bpf TEXT NOT NULL DEFAULT '',
    reason TEXT,
    stats TEXT
);
CREATE TABLE stats_samples (
    ts REAL NOT NULL,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    flows_active INTEGER NOT NULL,
    pps REAL NOT NULL,
    bps REAL NOT NULL,
    cpu_percent REAL,
    memory_percent REAL
);
CREATE INDEX stats_samples_ts ON stats_samples (ts);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    logger TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX logs_ts ON logs (ts)
"""),
]
