"""A pytest plugin for `make mutation` only: mutmut 3.7.0 (the last release that
accepts the click version Faust pins) reads ``item._nodeid``, which pytest 9
no longer has. Loaded by the ``pytest_add_cli_args`` of [tool.mutmut]."""

from __future__ import annotations

from _pytest.nodes import Node

if not hasattr(Node, "_nodeid"):
    Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]
