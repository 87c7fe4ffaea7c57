"""Prometheus text exposition (format 0.0.4) of a process's counters.

The agents and the stream worker both expose their metrics this way; the
format is the contract with the scraper, so it lives here with the other
wire formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["render_metrics"]


def render_metrics(prefix: str, plain: Iterable[tuple[str, str, float | int, str]],
                   labelled: Iterable[tuple[str, str, str, Mapping[str, int], str]] = ()) -> str:
    """``plain``: (name, kind, value, help); ``labelled``: (name, kind, label,
    {label value: count}, help), one sample per label value. Names get ``prefix_``."""
    lines = []
    for name, kind, value, help_ in plain:
        lines += [f"# HELP {prefix}_{name} {help_}", f"# TYPE {prefix}_{name} {kind}", f"{prefix}_{name} {value}"]
    for name, kind, label, values, help_ in labelled:
        lines += [f"# HELP {prefix}_{name} {help_}", f"# TYPE {prefix}_{name} {kind}"]
        lines += [f'{prefix}_{name}{{{label}="{v}"}} {n}' for v, n in sorted(values.items())]
    return "\n".join(lines) + "\n"
