"""The ledger side: ClickHouse schema, migrations, reports and audit tools.

Reads what ``streams`` wrote; writes only its own schema.

Errors::

    LedgerError
    ├── MigrationError    a migration failed or an applied one was edited
    └── CorrectionError   a correction that cannot be made as asked (ledger/corrections.py)

(a stored config whose bytes no longer match its hash, a statement or its
signature that does not verify: LedgerError itself, naming what failed)
"""

from __future__ import annotations

__all__ = ["LedgerError", "MigrationError"]


class LedgerError(Exception):
    """Root of the errors raised by :mod:`ledger`."""


class MigrationError(LedgerError):
    """A migration could not be applied, or an applied migration changed."""
