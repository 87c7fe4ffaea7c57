"""Housekeeping the stream's writer may not do: it can only insert and select.

``delete_interrupted`` removes the rows of batch writes that never committed
(an intent, no ``ledger_batches`` row): they are outside every view and
count for nothing, but take space. Run as the migrator (``bridgeledger ledger
gc``); a write younger than ``older_than_h`` is left alone, since it may
still be in flight.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["delete_interrupted"]

log = logging.getLogger(__name__)


def delete_interrupted(client: Any, db: str, older_than_h: float = 24.0) -> list[str]:
    """Delete the rows of uncommitted batch writes started ``older_than_h`` ago or more; return their ids."""
    rows = client.execute(
        f"SELECT batch_id FROM {db}.ledger_intents WHERE started_at < now() - %(s)s "
        f"AND batch_id NOT IN (SELECT batch_id FROM {db}.ledger_batches)", {"s": int(older_than_h * 3600)})
    batches = sorted(r[0] for r in rows)
    if batches:
        for table in ("ledger_entries", "raw_windows", "ledger_intents"):
            client.execute(f"ALTER TABLE {db}.{table} DELETE WHERE batch_id IN %(b)s AND batch_id NOT IN "
                           f"(SELECT batch_id FROM {db}.ledger_batches)", {"b": tuple(batches)})
        log.info("deleted the rows of %d interrupted batch write(s)", len(batches))
    return batches
