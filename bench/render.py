#!/usr/bin/env python3
"""Renders one bench run into bench/RESULTS.md and bench/chart.svg.

    bench/render.py RUN_DIR RESULTS_MD CHART_SVG

RUN_DIR holds, for each bench script NAME that ran, NAME.txt (what it printed) and
NAME.tsv (rows `tool <TAB> operation <TAB> milliseconds`, from `bench_record`).
The prose comes from bench/notes/ (intro.md, then NAME.md per script); every number
comes from RUN_DIR, so regenerating from another run changes only numbers.
"""

import math
import os
import sys
from xml.sax.saxutils import escape

# The order sections and chart groups appear in.
SCRIPTS = ["ipmi", "ipmi-fleet", "ipmi-datagrams", "apc-snmp", "apc-console", "baytech", "redfish", "san-check", "cluster"]
OURS = ("fencekit", "stonith-bridge")
# The chart's axis, in milliseconds: 1 ms to 100 s.
AXIS_MS = (1.0, 100000.0)

NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes")


def read_rows(run_dir, name):
    path = os.path.join(run_dir, name + ".tsv")
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            tool, op, ms = parts
            try:
                ms = float(ms)
            except ValueError:
                continue
            if ms > 0:
                rows.append((tool, op, ms))
    return rows


def ran(run_dir):
    """The scripts of this run, in the fixed order, then any other in name order."""
    names = {f[:-4] for f in os.listdir(run_dir) if f.endswith(".txt")}
    known = [s for s in SCRIPTS if s in names]
    return known + sorted(names - set(SCRIPTS))


def note(name):
    path = os.path.join(NOTES, name + ".md")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read().strip() + "\n"
    return f"## {name} (`bench/{name}.sh`)\n"


def results_md(run_dir):
    out = [note("intro"), ""]
    for name in ran(run_dir):
        with open(os.path.join(run_dir, name + ".txt"), encoding="utf-8") as f:
            printed = f.read().strip("\n")
        out += [note(name), "```", printed, "```", ""]
    return "\n".join(out)


def is_ours(tool):
    return tool.startswith(OURS)


def chart_svg(run_dir):
    groups = []  # (title, [(tool, ms)])
    for name in ran(run_dir):
        by_op = {}
        for tool, op, ms in read_rows(run_dir, name):
            by_op.setdefault(op, []).append((tool, ms))
        for op, bars in by_op.items():
            # Ours first, then the others as the script measured them.
            bars.sort(key=lambda b: not is_ours(b[0]))
            groups.append((f"{name}: {op}", bars))
    # A fixed axis, so that another run changes bar lengths and numbers, never the
    # drawing's frame.
    low, high = AXIS_MS

    label_w, plot_w, value_w = 330, 480, 90
    bar_h, gap, head = 14, 10, 46
    rows = sum(len(bars) for _, bars in groups) + len(groups)
    height = head + rows * bar_h + len(groups) * gap + 40
    width = label_w + plot_w + value_w

    def x(ms):
        ms = min(max(ms, low), high)
        span = math.log10(high) - math.log10(low)
        return label_w + plot_w * (math.log10(ms) - math.log10(low)) / span

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        "Time per operation, milliseconds (log scale; shorter is faster)</text>",
        '<text x="{0}" y="32" font-size="11"><tspan fill="#1f6fb2">&#9632; fencekit</tspan>'
        '  <tspan fill="#999999">&#9632; the tool users would pick instead</tspan></text>'.format(label_w),
    ]
    decade = low
    while decade <= high * 1.0001:
        gx = x(decade)
        svg.append(f'<line x1="{gx:.1f}" y1="{head - 6}" x2="{gx:.1f}" y2="{height - 28}" stroke="#dddddd"/>')
        text = f"{decade:g}"
        svg.append(f'<text x="{gx:.1f}" y="{height - 14}" text-anchor="middle">{text}</text>')
        decade *= 10
    y = head
    for title, bars in groups:
        svg.append(f'<text x="4" y="{y + 11}" font-weight="bold">{escape(title)}</text>')
        y += bar_h
        for tool, ms in bars:
            colour = "#1f6fb2" if is_ours(tool) else "#999999"
            end = x(ms)
            svg.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end">{escape(tool)}</text>')
            svg.append(
                f'<rect x="{label_w}" y="{y + 2}" width="{max(end - label_w, 1):.1f}" '
                f'height="{bar_h - 4}" fill="{colour}"/>'
            )
            svg.append(f'<text x="{end + 4:.1f}" y="{y + 11}">{ms:.1f}</text>')
            y += bar_h
        y += gap
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    run_dir, md_path, svg_path = sys.argv[1:]
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(results_md(run_dir))
    with open(svg_path, "w", encoding="utf-8") as f:
        f.write(chart_svg(run_dir))


if __name__ == "__main__":
    main()
