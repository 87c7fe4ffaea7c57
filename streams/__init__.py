"""The centre: validate, deduplicate, attribute and price telemetry into the ledger.

``attribution``, ``job_book`` and ``pricing`` are pure and import no Faust; ``processing``
combines them per message; ``worker`` batches and writes through a sink;
``app`` is the Faust wiring.

Errors::

    StreamError
    ├── SinkError       the ledger database refused or could not be reached
    ├── LeaseError      another live worker holds the chain (streams/lease.py)
    └── ChainMismatch   the database lost or rewrote checkpointed batches (streams/checkpoints.py)
"""

from __future__ import annotations

__all__ = ["SinkError", "StreamError"]


class StreamError(Exception):
    """Root of the errors raised by :mod:`streams`."""


class SinkError(StreamError):
    """Writing a batch to the ledger failed; the batch is retried, never dropped."""
