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
    (2, """
CREATE TABLE window_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('live', 'pcap')),
    source TEXT NOT NULL,
    window_s INTEGER NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    finished REAL
);
CREATE TABLE windows (
    set_id INTEGER NOT NULL REFERENCES window_sets (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (set_id, idx)
);
CREATE TABLE anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    set_id INTEGER NOT NULL REFERENCES window_sets (id) ON DELETE CASCADE,
    window_idx INTEGER NOT NULL,
    window_start REAL NOT NULL,
    window_end REAL NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    metric TEXT NOT NULL,
    current_value TEXT,
    threshold TEXT,
    flow_src TEXT,
    flow_dst TEXT,
    key TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX anomalies_set ON anomalies (set_id, window_idx);
CREATE INDEX anomalies_type ON anomalies (type, severity);
CREATE TABLE baselines (
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    stats TEXT NOT NULL,
    window_s INTEGER NOT NULL,
    source TEXT NOT NULL,
    windows INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (name, type)
)
"""),
    (3, """
CREATE TABLE threats (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    attack_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    score INTEGER NOT NULL,
    confidence REAL NOT NULL,
    source_ip TEXT,
    dest_ip TEXT,
    src_mac TEXT,
    attacker TEXT,
    attacker_mac TEXT,
    protocol TEXT,
    description TEXT NOT NULL,
    evidence TEXT NOT NULL,
    dedup_key TEXT,
    correlation_id TEXT,
    verification_status TEXT NOT NULL DEFAULT 'unverified',
    verification TEXT,
    status TEXT NOT NULL DEFAULT 'new',
    note TEXT,
    response_action TEXT,
    deception_session_id TEXT
);
CREATE INDEX threats_created ON threats (created);
CREATE INDEX threats_key ON threats (dedup_key, last_seen);
CREATE INDEX threats_type ON threats (attack_type, severity);
CREATE TABLE threat_events (
    correlation_id TEXT NOT NULL,
    ts REAL NOT NULL,
    event_type TEXT NOT NULL,
    channel TEXT NOT NULL,
    data TEXT
);
CREATE INDEX threat_events_cor ON threat_events (correlation_id, ts);
CREATE TABLE deception_sessions (
    id TEXT PRIMARY KEY,
    threat_id TEXT,
    target_domain TEXT NOT NULL,
    attacker_ip TEXT NOT NULL,
    behavior_profile TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    estimated_end REAL NOT NULL,
    stopped REAL,
    stop_reason TEXT,
    packets_sent INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    attacker_actions INTEGER NOT NULL DEFAULT 0,
    decoy_sources TEXT NOT NULL DEFAULT '[]',
    correlation_id TEXT,
    error TEXT
);
CREATE INDEX deception_target ON deception_sessions (target_domain, status);
CREATE TABLE honeytokens (
    token TEXT PRIMARY KEY,
    token_type TEXT NOT NULL,
    needle TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL,
    embedded_in TEXT NOT NULL,
    session_id TEXT,
    threat_id TEXT,
    created REAL NOT NULL,
    trigger_count INTEGER NOT NULL DEFAULT 0,
    first_trigger REAL,
    last_trigger REAL,
    trigger_sources TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE honeytoken_triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL,
    ts REAL NOT NULL,
    source_ip TEXT,
    via TEXT NOT NULL,
    context TEXT
)"""),
    # 4: offline jobs and call sessions (3 is the detection issue's; the migrator applies every
    # version above the store's, so either may land first)
    (4, """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    completed REAL,
    error TEXT,
    total_packets INTEGER,
    total_bytes INTEGER,
    session_count INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status ON jobs (status, created);
CREATE TABLE call_sessions (
    id TEXT PRIMARY KEY,
    job_id TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    run_id INTEGER,
    call_id TEXT NOT NULL,
    type TEXT NOT NULL,
    method TEXT NOT NULL,
    state TEXT NOT NULL,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    events_count INTEGER NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX call_sessions_job ON call_sessions (job_id, start_ts);
CREATE INDEX call_sessions_live ON call_sessions (run_id, start_ts)
"""),
    (5, """
CREATE TABLE exporters (
    id INTEGER PRIMARY KEY,
    settings TEXT NOT NULL,
    created REAL NOT NULL
)
"""),
    (6, """
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated REAL NOT NULL
)
"""),
]
