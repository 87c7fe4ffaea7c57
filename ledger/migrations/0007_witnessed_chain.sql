-- Ledger schema v7: the witnessed chain (docs/ledger.md, schemas/checkpoint.py).
-- Each batch's hash now covers its raw windows (windows_hash: SHA-256 of the
-- SHA-256s of the window messages' bytes, in window_id order), and the stream
-- keeps a copy of every checkpoint it signed and published to the
-- ledger.checkpoints topic. The topic is the record members witness; this
-- table is a convenience for statements (each row is signed, so a forged row
-- fails its signature, and a withheld one is caught by the witnesses).
ALTER TABLE ledger_batches ADD COLUMN windows_hash String DEFAULT '';
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    chain_id      String,
    seq           Int64,
    kind          String,
    sha256        String,
    message       String,
    published_at  DateTime
) ENGINE = MergeTree()
ORDER BY (chain_id, seq, published_at);
