"""The GPU node agent: read GPUs, resolve jobs, cut windows, publish.

Hardware sits behind :class:`agents.readers.GpuReader` (NVML, replayed NVML
traces, a simulated fleet); transport behind :class:`agents.publisher.Publisher`
(Kafka, in memory). Imports ``schemas`` and nothing else of ours.

Errors::

    AgentError
    ├── ReaderError       a GPU reader cannot start or read (NVML missing, bad trace)
    ├── PublishError      the transport refused or could not be reached
    ├── AgentConfigError  agent.yaml is invalid (agents/settings.py; names the field)
    ├── SpoolError        the on-disk spool cannot be opened or written (agents/spool.py)
    └── JobSourceError    a scheduler's output cannot be read as job events (agents/job_sources.py)

(the job-event outbox, agents/job_outbox.py, raises AgentError itself for a bad
jobs.yaml)
"""

from __future__ import annotations

__all__ = ["AgentError", "PublishError", "ReaderError"]


class AgentError(Exception):
    """Root of the errors raised by :mod:`agents`."""


class ReaderError(AgentError):
    """A GPU reader could not start or read."""


class PublishError(AgentError):
    """Publishing to the transport failed."""
