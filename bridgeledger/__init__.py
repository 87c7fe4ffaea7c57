"""bridgeledger: the command line and the local development stack.

Errors::

    BridgeledgerError
    └── StackError     the local Kafka/ClickHouse stack could not be set up or started
"""

from __future__ import annotations

__all__ = ["BridgeledgerError", "StackError"]


class BridgeledgerError(Exception):
    """Root of the errors raised by the CLI-side package."""


class StackError(BridgeledgerError):
    """The local stack could not be installed, started or reached."""
