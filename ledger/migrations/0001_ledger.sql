-- Ledger schema v1. Runs on ClickHouse 18.16 (Debian) and current releases:
-- no DateTime64, no CODEC, no TTL, no LowCardinality. Every statement is
-- idempotent (IF NOT EXISTS), so running the migrations twice is harmless.
--
-- Commit protocol (streams/sink.py): a batch writes an intent, its ledger
-- entries and raw windows tagged with a fresh batch_id, then one
-- ledger_batches row, the commit record that links the batch into the hash
-- chain (schemas/chain.py). Rows whose batch_id has no ledger_batches row are
-- an interrupted write: the views below ignore them and the chain's sink
-- deletes them when it starts. The sink skips
-- windows that are already committed, so nothing is counted twice; the
-- entry and window tables are plain MergeTree, so nothing is merged away
-- behind the chain's back. Readers use the views `ledger` and `windows`.

-- The telemetry windows as received, kept for recomputation.
CREATE TABLE IF NOT EXISTS raw_windows (
    batch_id         String,
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (site_id, agent_id, boot_id, seq);

-- One row per (window, GPU, account, member): the unit of account.
-- corrects: the entry_id a correction adjusts (empty for ordinary entries).
CREATE TABLE IF NOT EXISTS ledger_entries (
    batch_id              String,
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
    corrects              String,
    written_at            DateTime
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (member, project, site_id, window_start, entry_id);

-- The hash chain: one commit record per batch.
CREATE TABLE IF NOT EXISTS ledger_batches (
    chain_id          String,
    seq               UInt64,
    batch_id          String,
    prev_hash         String,
    entries_hash      String,
    batch_hash        String,
    entry_count       UInt64,
    window_count      UInt64,
    energy_mj         Int64,
    gpu_ms            Int64,
    min_window_start  DateTime,
    max_window_start  DateTime,
    entry_ids         Array(String),
    entry_digests     Array(String),
    committed_at      DateTime
) ENGINE = MergeTree()
ORDER BY (chain_id, seq);

-- Written before a batch's rows: an intent without a commit is an interrupted
-- write of that chain, which its sink cleans up when it starts.
CREATE TABLE IF NOT EXISTS ledger_intents (
    chain_id    String,
    batch_id    String,
    started_at  DateTime
) ENGINE = MergeTree()
ORDER BY (chain_id, batch_id);

-- What readers query: committed rows only.
CREATE VIEW IF NOT EXISTS ledger AS
SELECT * FROM ledger_entries WHERE batch_id IN (SELECT batch_id FROM ledger_batches);

CREATE VIEW IF NOT EXISTS windows AS
SELECT * FROM raw_windows WHERE batch_id IN (SELECT batch_id FROM ledger_batches);

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
