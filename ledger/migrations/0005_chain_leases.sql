-- Ledger schema v5: one live writer per hash chain.
-- A worker holds its chain by a lease it renews (streams/lease.py); a second
-- worker configured with the same chain id refuses to start while the lease
-- is live, so it can never delete the first one's in-flight rows or fork its
-- chain. A dead worker's lease expires and the chain is taken over.
-- version: the writer's nanosecond clock, increasing within one holder, so
-- the latest row of a holder (renewal or release) decides its expiry.
CREATE TABLE IF NOT EXISTS chain_leases (
    chain_id    String,
    holder      String,
    taken_at    DateTime,
    expires_at  DateTime,
    version     UInt64,
    written_at  DateTime
) ENGINE = MergeTree()
ORDER BY (chain_id, holder, version);
