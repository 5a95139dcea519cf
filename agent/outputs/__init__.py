"""Events for SIEMs and fleets: EVE-compatible JSON lines (Suricata's field
names, so a pipeline that ingests Suricata takes capbox's events as they
are), written to a rotated file and sent to syslog collectors (RFC 5424
over UDP, TCP and TLS).  docs/EVENTS.md has the records and the settings."""
