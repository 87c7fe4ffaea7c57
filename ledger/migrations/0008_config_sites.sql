-- Ledger schema v8: the parts of a consortium config that the dashboards need
-- in SQL (ledger/capacity.py computes the same from the stored config file):
-- each site's hosting member, declared GPUs and idle policy, and the members'
-- pledged capacity (docs/contributions.md). Written with config_members when
-- the stream records a config.
CREATE TABLE IF NOT EXISTS config_sites (
    config_hash   String,
    site_id       String,
    country       String,
    gpus          UInt32,
    idle_policy   String,
    recorded_at   DateTime
) ENGINE = MergeTree()
ORDER BY (config_hash, site_id);
CREATE TABLE IF NOT EXISTS config_pledges (
    config_hash           String,
    member                String,
    period                String,
    normalised_gpu_hours  Decimal(18, 3),
    availability_target   Decimal(9, 6),
    recorded_at           DateTime
) ENGINE = MergeTree()
ORDER BY (config_hash, member, period);
