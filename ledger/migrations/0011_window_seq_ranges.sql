-- Ledger schema v11: what the worker's resend check reads first
-- (streams/chain_writer.py `committed`). Per agent run (site, agent, boot,
-- epoch: the parts of a window id before its seq) the lowest and highest seq
-- of its rows in raw_windows, kept as each insert lands. A window whose seq is
-- outside its run's range is not booked, so only the others are looked up by
-- id: the check reads in proportion to the batch, not to the ledger. It is a
-- filter, not a record: rows of interrupted writes widen a range (the lookup
-- then finds nothing), and the lookup, over committed batches only, decides.
CREATE TABLE IF NOT EXISTS window_seq_ranges (
    site_id   String,
    agent_id  String,
    boot_id   String,
    epoch     String,
    low       AggregateFunction(min, UInt64),
    high      AggregateFunction(max, UInt64)
) ENGINE = AggregatingMergeTree()
ORDER BY (site_id, agent_id, boot_id, epoch);

CREATE MATERIALIZED VIEW IF NOT EXISTS window_seq_ranges_feed TO window_seq_ranges AS
SELECT site_id, agent_id, boot_id, splitByChar('/', window_id)[4] AS epoch, minState(seq) AS low,
       maxState(seq) AS high
FROM raw_windows
GROUP BY site_id, agent_id, boot_id, epoch;

-- The windows written before this migration (run it with the stream stopped).
INSERT INTO window_seq_ranges
SELECT site_id, agent_id, boot_id, splitByChar('/', window_id)[4] AS epoch, minState(seq) AS low,
       maxState(seq) AS high
FROM raw_windows
GROUP BY site_id, agent_id, boot_id, epoch;
