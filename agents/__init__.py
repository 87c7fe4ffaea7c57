"""The GPU node agent: read GPUs, resolve jobs, cut windows, publish.

Hardware sits behind :class:`agents.readers.GpuReader` (NVML, replayed NVML
traces, a simulated fleet); transport behind :class:`agents.publisher.Publisher`
(Kafka, in memory). Imports ``schemas`` and nothing else of ours.

Errors::

    AgentError
    ├── ReaderError     a GPU reader cannot start or read (NVML missing, bad trace)
    └── PublishError    the transport refused or could not be reached
"""

from __future__ import annotations

__all__ = ["AgentError", "PublishError", "ReaderError"]


class AgentError(Exception):
    """Root of the errors raised by :mod:`agents`."""


class ReaderError(AgentError):
    """A GPU reader could not start or read."""


class PublishError(AgentError):
    """Publishing to the transport failed."""
