"""Root errors of the contract package."""

from __future__ import annotations


class SchemaError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class WireError(SchemaError):
    """A message that does not meet the wire contract.

    ``reason`` is a short machine-readable code that goes on the dead-letter
    record (``malformed_json``, ``schema_invalid``, ``unsupported_version`` ...).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(SchemaError):
    """An invalid consortium config; the message names file, field and fix."""
