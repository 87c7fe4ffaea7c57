-- Ledger schema v2: the reasons for corrections. Correcting entries live in
-- ledger_entries like any other (corrects = the original's entry_id, in a
-- batch of the "corrections" chain); this table says why and who.
CREATE TABLE IF NOT EXISTS corrections (
    batch_id    String,
    corrects    String,
    reason      String,
    author      String,
    created_at  DateTime
) ENGINE = MergeTree()
ORDER BY (corrects, created_at);

