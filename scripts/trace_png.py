#!/usr/bin/env python3
"""Draws a `pipeline run --trace run.json` file as a timeline PNG: one track per worker thread,
one box per stage span (colour = stage kind, label = date), as Perfetto shows it.

usage: python3 scripts/trace_png.py run.json run.png     (needs matplotlib: pip install matplotlib)
"""
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {
    "decode": "#4e79a7", "feature_join": "#f28e2b", "score": "#e15759", "rank": "#76b7b2",
    "cluster_score": "#59a14f", "write": "#edc948", "validate": "#b07aa1", "fetch": "#9c755f", "submit": "#ff9da7",
}


def spans(events):
    """(tid, name, date, start_ms, end_ms) of every B/E pair and X event."""
    open_ = defaultdict(list)
    for e in sorted(events, key=lambda e: e.get("ts", 0)):
        ph, tid = e.get("ph"), e.get("tid")
        if ph == "B":
            open_[tid].append(e)
        elif ph == "E" and open_[tid]:
            b = open_[tid].pop()
            yield tid, b["name"], b.get("args", {}).get("date", ""), b["ts"] / 1e3, e["ts"] / 1e3
        elif ph == "X":
            yield tid, e["name"], e.get("args", {}).get("date", ""), e["ts"] / 1e3, (e["ts"] + e["dur"]) / 1e3


def main(src, dst):
    data = json.load(open(src))
    events = data if isinstance(data, list) else data["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    rows = [s for s in spans(events) if s[1] in COLOURS]
    tids = sorted({r[0] for r in rows})
    fig, ax = plt.subplots(figsize=(14, 1.0 + 0.6 * len(tids)))
    for tid, name, date, a, b in rows:
        y = tids.index(tid)
        ax.barh(y, b - a, left=a, height=0.8, color=COLOURS[name], edgecolor="white", linewidth=0.3)
        if name == "decode" and date:
            ax.text(a, y + 0.45, str(date)[5:].strip('"'), fontsize=6, va="bottom")
    ax.set_yticks(range(len(tids)), [names.get(t, f"thread {t}") for t in tids])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the run started")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, COLOURS.keys(), ncol=8, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
