"""Shared matplotlib helpers for the benchmarks: headless (Agg) figures saved as PNG.

Plots show numbers only (rates, times, sizes), never image content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

# Benchmarks run on servers and in CI: never try to open a window.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def colour(index: int) -> str:
    """The index-th colour of the default cycle, so a series looks the same in every plot."""
    return f"C{index % 10}"


def grid(n_panels: int, ncols: int = 3, panel_size: tuple[float, float] = (4.2, 3.6)) -> tuple[Figure, list[Axes]]:
    """A figure with `n_panels` axes laid out in rows of `ncols`; unused cells are hidden."""
    ncols = max(1, min(ncols, n_panels))
    nrows = max(1, -(-n_panels // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False
    )
    flat = [ax for row in axes for ax in row]
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def bars(ax: Axes, labels: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str) -> None:
    """Grouped bar chart: one group per label, one bar per series."""
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, list(values), width=width, label=name, color=colour(i))
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def stacked_bars(ax: Axes, labels: Sequence[str], parts: Mapping[str, Sequence[float]], ylabel: str) -> None:
    """Stacked bar chart: one bar per label, one segment per part (e.g. stage times)."""
    bottoms = [0.0] * len(labels)
    for i, (name, values) in enumerate(parts.items()):
        vals = [float(v) for v in values]
        ax.bar(range(len(labels)), vals, bottom=bottoms, label=name, color=colour(i))
        bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def save(fig: Figure, path: str | Path, title: str | None = None, **kwargs: Any) -> Path:
    """Save `fig` as PNG (creating the directory) and release its memory."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=kwargs.pop("dpi", 110), **kwargs)
    plt.close(fig)
    return out
