-- Ledger schema v1. Runs on ClickHouse 18.16 (Debian) and current releases:
-- no DateTime64, no CODEC, no TTL, no LowCardinality. Every statement is
-- idempotent (IF NOT EXISTS), so running the migrations twice is harmless.
-- Deduplication: every table is a ReplacingMergeTree keyed by a deterministic
-- identity, and every query reads it with FINAL, so results are right before
-- background merges happen.

-- The telemetry windows as received, kept for recomputation.
CREATE TABLE IF NOT EXISTS raw_windows (
    window_id        String,
    agent_id         String,
    site_id          String,
    node             String,
    boot_id          String,
    seq              UInt64,
    window_start     DateTime,
    window_start_ns  UInt64,
    window_end_ns    UInt64,
    gpu_count        UInt16,
    energy_mj        Int64,
    gpu_ms           Int64,
    payload          String,
    received_at      DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (site_id, agent_id, boot_id, seq);

-- One row per (window, GPU, account, member): the unit of account.
CREATE TABLE IF NOT EXISTS ledger_entries (
    entry_id              String,
    window_id             String,
    agent_id              String,
    boot_id               String,
    seq                   UInt64,
    site_id               String,
    node                  String,
    gpu_uuid              String,
    gpu_model             String,
    window_start          DateTime,
    window_start_ns       UInt64,
    window_end_ns         UInt64,
    job_id                String,
    account_kind          String,
    account               String,
    project               String,
    member                String,
    energy_mj             Int64,
    gpu_ms                Int64,
    normalised_gpu_hours  Decimal(18, 9),
    cost_eur              Decimal(18, 6),
    carbon_g              Decimal(18, 3),
    config_hash           String,
    written_at            DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (member, project, site_id, window_start, entry_id);

-- Job start/end events from scheduler hooks.
CREATE TABLE IF NOT EXISTS job_events (
    site_id      String,
    job_id       String,
    event        String,
    account      String,
    node         String,
    gpus         Array(String),
    exclusive    UInt8,
    time_ns      UInt64,
    received_at  DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY (site_id, job_id, event);

-- Every consortium config the ledger was computed with, by content hash.
CREATE TABLE IF NOT EXISTS config_versions (
    config_hash  String,
    version      String,
    content      String,
    first_seen   DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY config_hash;

-- Rejected messages (also on the telemetry.dlq topic), for data-quality reports.
CREATE TABLE IF NOT EXISTS dlq_records (
    received_at  DateTime,
    reason       String,
    detail       String,
    site_id      String,
    agent_id     String,
    raw_sha256   String,
    raw          String
) ENGINE = ReplacingMergeTree()
ORDER BY (reason, raw_sha256);
