"""Inline SVG bar charts for the HTML report.

Hand-written rather than matplotlib's SVG backend: the output must be byte-identical for
identical input (a rescan of an unchanged case is a no-op) and small enough to inline,
and a histogram of integers is a few rectangles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape


def histogram_svg(values: Sequence[int], lo: int, hi: int, title: str, xlabel: str,
                  width: int = 480, height: int = 200, ylabel: str = "") -> str:
    """Bars of the count of each integer value in lo..hi (inclusive)."""
    return counts_svg(Counter(values), lo, hi, title, xlabel, width, height, ylabel)


def counts_svg(tally: Mapping[int, int], lo: int, hi: int, title: str, xlabel: str,
               width: int = 480, height: int = 200, ylabel: str = "") -> str:
    """`histogram_svg` from counts already tallied (value -> count)."""
    counts = [tally.get(v, 0) for v in range(lo, hi + 1)]
    top = max(counts) if counts and max(counts) > 0 else 1
    left, bottom, pad = 40, 30, 20
    plot_w, plot_h = width - left - pad, height - bottom - pad
    bar_w = plot_w / len(counts)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{pad + plot_h}" x2="{left + plot_w}" y2="{pad + plot_h}" '
        'stroke="#333"/>',
        f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{pad + plot_h}" stroke="#333"/>',
    ]
    for k, c in enumerate(counts):
        if c == 0:
            continue
        h = plot_h * c / top
        x = left + k * bar_w
        parts.append(
            f'<rect x="{x:.1f}" y="{pad + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#4a6fa5"><title>{lo + k}: {c}</title></rect>'
        )
    parts += [
        f'<text x="{left}" y="{height - 8}" font-size="11">{lo}</text>',
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" '
        f'text-anchor="end">{hi}</text>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" font-size="11" '
        f'text-anchor="middle">{escape(xlabel)}</text>',
        f'<text x="4" y="{pad + 4}" font-size="11">{top}</text>',
        f'<text x="4" y="{pad + plot_h}" font-size="11">0</text>',
        f'<text x="12" y="{pad + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {pad + plot_h / 2:.1f})">{escape(ylabel)}</text>'
        if ylabel else "",
        "</svg>",
    ]
    return "".join(parts)
