-- Ledger schema v6: where each entry's account came from (streams/attribution.py
-- rule 1): job_event, job_event_overrode_claim, self_declared, none, correction.
-- It is part of the entry's chain line (schemas/chain.py), so it cannot be
-- changed unseen. The view is made again because ClickHouse 18.16 expands
-- `SELECT *` when a view is created: the old view would not show the column.
ALTER TABLE ledger_entries ADD COLUMN account_source String DEFAULT '';
DROP TABLE IF EXISTS ledger;
CREATE VIEW IF NOT EXISTS ledger AS
SELECT * FROM ledger_entries WHERE batch_id IN (SELECT batch_id FROM ledger_batches);
