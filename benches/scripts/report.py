#!/usr/bin/env python3
"""Summarise criterion's output: a Markdown table and an SVG chart of every benchmark.

Usage: report.py [CRITERION_DIR] [SVG_OUT]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion (or target/criterion). For each
benchmark it reads `new/benchmark.json` (the id and the throughput) and `new/estimates.json`
(the median), and prints one row: id, median time per iteration, time per element and
elements per second when the benchmark declares a throughput. The SVG (default
docs/performance.svg) draws the time per element of every benchmark on a log scale.
Only the standard library is used.
"""

import json
import math
import os
import sys
from pathlib import Path


def human_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def human_rate(per_s: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.3g} {unit}/s"
    return f"{per_s:.3g} /s"


def collect(root: Path):
    rows = []
    for bench in sorted(root.glob("**/new/benchmark.json")):
        try:
            meta = json.loads(bench.read_text())
            est = json.loads((bench.parent / "estimates.json").read_text())
        except (OSError, ValueError) as e:
            print(f"skipping {bench}: {e}", file=sys.stderr)
            continue
        median = est["median"]["point_estimate"]
        elements = None
        tp = meta.get("throughput") or {}
        if "Elements" in tp:
            elements = tp["Elements"]
        per_element = median / elements if elements else median
        rows.append(
            {
                "id": meta["full_id"],
                "median_ns": median,
                "per_element_ns": per_element,
                "per_s": 1e9 / per_element if per_element > 0 else float("inf"),
                "elements": elements,
            }
        )
    rows.sort(key=lambda r: r["id"])
    return rows


def markdown(rows) -> str:
    out = ["| benchmark | median per iteration | per element | rate |", "|---|---|---|---|"]
    for r in rows:
        rate = human_rate(r["per_s"])
        per = human_time(r["per_element_ns"]) if r["elements"] else "—"
        out.append(f"| `{r['id']}` | {human_time(r['median_ns'])} | {per} | {rate} |")
    return "\n".join(out)


def svg(rows) -> str:
    width, bar_h, left, right, top = 900, 18, 330, 90, 40
    height = top + bar_h * len(rows) + 40
    values = [max(r["per_element_ns"], 1e-3) for r in rows] or [1.0]
    lo = math.floor(math.log10(min(values)))
    hi = math.ceil(math.log10(max(values))) or 1
    if hi <= lo:
        hi = lo + 1
    span = width - left - right

    def x(v: float) -> float:
        return left + (math.log10(max(v, 1e-3)) - lo) / (hi - lo) * span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">spiderpool-rs: time per operation '
        f"(median, log scale; lower is faster)</text>",
    ]
    for e in range(lo, hi + 1):
        gx = x(10**e)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{height - 30}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{gx:.1f}" y="{height - 16}" text-anchor="middle">{human_time(10**e)}</text>'
        )
    for i, r in enumerate(rows):
        y = top + i * bar_h
        w = max(x(r["per_element_ns"]) - left, 1)
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{r["id"]}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" fill="#4a7bb7"/>'
        )
        parts.append(
            f'<text x="{left + w + 4:.1f}" y="{y + 13}">{human_time(r["per_element_ns"])}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(target) / "criterion"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/performance.svg")
    if not root.is_dir():
        print(f"{root}: no criterion output; run cargo bench first", file=sys.stderr)
        return 1
    rows = collect(root)
    if not rows:
        print(f"{root}: no benchmark results found", file=sys.stderr)
        return 1
    print(markdown(rows))
    out.write_text(svg(rows))
    print(f"\nchart written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
