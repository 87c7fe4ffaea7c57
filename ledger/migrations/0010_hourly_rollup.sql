-- Ledger schema v10: an exact hourly rollup for the dashboards (docs/ledger.md,
-- "The hourly rollup"). Every insert into ledger_entries is summed, as it is
-- written, per batch and per hour × site × GPU model × member × project ×
-- account kind × account source × config, corrections apart; sums are exact
-- (integers, and decimals summed as Decimal(38, scale)). The rows keep their
-- batch_id, so the view `rollup` counts committed batches only, as `ledger`
-- does: rows of an interrupted write stay outside it. The dashboards read
-- `rollup` instead of scanning every entry; `bridgeledger ledger reconcile`
-- checks that it equals the ledger, batch by batch.
CREATE TABLE IF NOT EXISTS ledger_hourly (
    batch_id              String,
    hour                  DateTime,
    site_id               String,
    gpu_model             String,
    member                String,
    project               String,
    account_kind          String,
    account_source        String,
    config_hash           String,
    corrected             UInt8,
    entries               UInt64,
    energy_mj             Int64,
    gpu_ms                Int64,
    normalised_gpu_hours  Decimal(38, 9),
    cost_eur              Decimal(38, 6),
    carbon_g              Decimal(38, 3)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, member, site_id, project, batch_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_hourly_feed TO ledger_hourly AS
SELECT batch_id, toStartOfHour(window_start) AS hour, site_id, gpu_model, member, project, account_kind,
       account_source, config_hash, toUInt8(corrects != '') AS corrected, count() AS entries,
       sum(energy_mj) AS energy_mj, sum(gpu_ms) AS gpu_ms, sum(normalised_gpu_hours) AS normalised_gpu_hours,
       sum(cost_eur) AS cost_eur, sum(carbon_g) AS carbon_g
FROM ledger_entries
GROUP BY batch_id, hour, site_id, gpu_model, member, project, account_kind, account_source, config_hash, corrected;

-- The entries written before this migration (run it with the stream stopped,
-- like every migration: a batch written between the two statements would be
-- summed twice, which reconcile would report).
INSERT INTO ledger_hourly
SELECT batch_id, toStartOfHour(window_start) AS hour, site_id, gpu_model, member, project, account_kind,
       account_source, config_hash, toUInt8(corrects != '') AS corrected, count() AS entries,
       sum(energy_mj) AS energy_mj, sum(gpu_ms) AS gpu_ms, sum(normalised_gpu_hours) AS normalised_gpu_hours,
       sum(cost_eur) AS cost_eur, sum(carbon_g) AS carbon_g
FROM ledger_entries
WHERE batch_id NOT IN (SELECT batch_id FROM ledger_hourly)
GROUP BY batch_id, hour, site_id, gpu_model, member, project, account_kind, account_source, config_hash, corrected;

-- What the dashboards read: committed batches only. `window_start` is the hour's
-- start, so a panel's time filter counts whole hours (those that start in the range).
CREATE VIEW IF NOT EXISTS rollup AS
SELECT hour AS window_start, site_id, gpu_model, member, project, account_kind, account_source, config_hash,
       corrected, entries, energy_mj, gpu_ms, normalised_gpu_hours, cost_eur, carbon_g
FROM ledger_hourly WHERE batch_id IN (SELECT batch_id FROM ledger_batches);
