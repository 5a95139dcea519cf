"""Traffic analysis: windows from the C core, baselines learned from them,
anomalies found against the baselines (or defaults) — live and for pcaps."""
