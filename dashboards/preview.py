"""Dashboards as pictures, for people without Grafana (and for the README).

Runs every panel's query (expanded for the range, all variable values) on
ClickHouse and draws the panels of a dashboard on one PNG with matplotlib:
stats as big numbers, tables as tables, bar charts and time series as charts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dashboards.build import expand
from dashboards.specs import DASHBOARDS, DashboardSpec, PanelSpec

__all__ = ["render_dashboard", "render_all"]

Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M}"
    s = str(v)
    return s if len(s) <= 18 else s[:16] + "…"


# Grafana's unit ids as people write the units (a preview is read by people)
UNIT_LABELS = {"h": "h", "kwatth": "kWh", "currencyEUR": "EUR", "masskg": "kg CO₂", "short": "", "percent": "%"}


def unit_label(unit: str) -> str:
    """``kwatth`` -> ``kWh``; ``suffix: mJ`` -> ``mJ``; an unknown id is shown as it is."""
    if unit.startswith("suffix:"):
        return unit.split(":", 1)[1].strip()
    return UNIT_LABELS.get(unit, unit)


def _draw(ax: Any, p: PanelSpec, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    label = unit_label(p.unit)
    ax.set_title(f"{p.title} [{label}]" if label else p.title, fontsize=9, loc="left")
    if not rows:
        ax.text(0.5, 0.5, "no data", ha="center", va="center")
        ax.axis("off")
    elif p.kind == "stat":
        ax.text(0.5, 0.45, _fmt(rows[0][0]), ha="center", va="center", fontsize=26)
        ax.axis("off")
    elif p.kind == "table":
        ax.axis("off")
        cells = [[_fmt(v) for v in r] for r in rows[:12]]
        t = ax.table(cellText=cells, colLabels=names, loc="upper center", cellLoc="left")
        t.auto_set_font_size(False)
        t.set_fontsize(6.5)
    elif p.kind == "barchart":
        labels = [str(r[0]) for r in rows]
        series = list(zip(*[r[1:] for r in rows], strict=True))
        width = 0.8 / len(series)
        for i, (name, values) in enumerate(zip(names[1:], series, strict=True)):
            ax.bar([x + i * width for x in range(len(labels))], [float(v) for v in values], width, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=7)
        if len(series) > 1:
            ax.legend(fontsize=6)
    else:  # timeseries, long format: time, [label], value
        groups: dict[str, list[tuple[Any, float]]] = {}
        for r in rows:
            label = str(r[1]) if len(r) > 2 else names[-1]
            groups.setdefault(label, []).append((r[0], float(r[-1])))
        for label, points in groups.items():
            ax.plot([t for t, _ in points], [v for _, v in points], marker="o", markersize=3, label=label)
        ax.tick_params(axis="x", labelsize=6, rotation=30)
        ax.legend(fontsize=6, ncol=4)


def render_dashboard(spec: DashboardSpec, query: Query, start_s: int, end_s: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variables = {v.name: [str(r[0]) for r in query(v.sql)[1]] for v in spec.variables}
    n = len(spec.panels)
    cols = 2
    rows_n = (n + 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(14, 3.6 * rows_n), squeeze=False)
    for ax, p in zip(axes.flat, spec.panels, strict=False):
        names, rows = query(expand(p.sql, start_s, end_s, variables))
        _draw(ax, p, names, rows)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{spec.title}  ({datetime.utcfromtimestamp(start_s):%Y-%m-%d} – "
                 f"{datetime.utcfromtimestamp(end_s):%Y-%m-%d} UTC)", fontsize=12)
    fig.tight_layout()
    path = out / f"{spec.uid}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_all(query: Query, start_s: int, end_s: int, out: Path,
               specs: Sequence[DashboardSpec] = DASHBOARDS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [render_dashboard(s, query, start_s, end_s, out) for s in specs]
