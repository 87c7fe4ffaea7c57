-- Ledger schema v4: rollups per day and per month × member × site × project.
-- Plain views over the committed ledger rather than materialized views: a
-- materialized view would also aggregate rows of interrupted writes, which
-- the chain excludes, and its totals could then disagree with the ledger.
CREATE VIEW IF NOT EXISTS rollup_daily AS
SELECT toDate(window_start) AS day, member, site_id, project, account_kind,
       sum(gpu_ms) AS gpu_ms, sum(normalised_gpu_hours) AS normalised_gpu_hours,
       sum(energy_mj) AS energy_mj, sum(cost_eur) AS cost_eur, sum(carbon_g) AS carbon_g, count() AS entries
FROM ledger
GROUP BY day, member, site_id, project, account_kind;

CREATE VIEW IF NOT EXISTS rollup_monthly AS
SELECT toStartOfMonth(window_start) AS month, member, site_id, project, account_kind,
       sum(gpu_ms) AS gpu_ms, sum(normalised_gpu_hours) AS normalised_gpu_hours,
       sum(energy_mj) AS energy_mj, sum(cost_eur) AS cost_eur, sum(carbon_g) AS carbon_g, count() AS entries
FROM ledger
GROUP BY month, member, site_id, project, account_kind;
