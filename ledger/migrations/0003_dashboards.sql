-- Ledger schema v3: what dashboards need beyond the ledger itself.
-- The members and their contribution shares of each consortium config (so
-- SQL can compare usage with contribution), and the results of audit runs.
CREATE TABLE IF NOT EXISTS config_members (
    config_hash         String,
    member              String,
    name                String,
    contribution_share  Decimal(9, 6),
    recorded_at         DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY (config_hash, member);

CREATE TABLE IF NOT EXISTS audit_runs (
    kind        String,
    run_at      DateTime,
    ok          UInt8,
    summary     String,
    period_from DateTime,
    period_to   DateTime
) ENGINE = MergeTree()
ORDER BY (kind, run_at);
