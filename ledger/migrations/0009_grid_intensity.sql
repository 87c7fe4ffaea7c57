-- Ledger schema v9: hourly grid carbon intensity (schemas/grid.py). The series
-- file a config names is stored under its SHA-256 (the config, whose hash the
-- entries carry, names that hash), so audits price carbon again from the
-- ledger alone; its rows and the config-to-series link are there for the
-- dashboards' SQL (the Finance dashboard's carbon by method). Written when the
-- stream records a config.
CREATE TABLE IF NOT EXISTS grid_series_files (
    sha256       String,
    name         String,
    content      String,
    recorded_at  DateTime
) ENGINE = MergeTree()
ORDER BY sha256;
CREATE TABLE IF NOT EXISTS grid_intensity (
    series_sha256  String,
    site_id        String,
    hour           DateTime,
    gco2_per_kwh   Decimal(18, 6)
) ENGINE = MergeTree()
ORDER BY (series_sha256, site_id, hour);
CREATE TABLE IF NOT EXISTS config_grid (
    config_hash    String,
    series_sha256  String,
    recorded_at    DateTime
) ENGINE = MergeTree()
ORDER BY config_hash;
