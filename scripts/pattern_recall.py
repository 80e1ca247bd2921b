#!/usr/bin/env python3
"""Which planted laundering patterns a run's scores find (laundering world).

Usage: pattern_recall.py PATTERNS INPUT NETWORK WINDOW NAME=OUTPUT_ROOT ...

PATTERNS is the answer key `pipeline generate --patterns FILE` wrote for the same input. For
every date each output root has scores for, an alert belongs to a pattern when its address sends
or receives one of the pattern's transfers in that date's money flows. Each alert gets its
percentile among the date's alerts (so every calibration compares alike); the threshold is the
lowest percentile at which the labelled alerts of all dates, pooled, still have a precision of at
least 50% (ground_truth.parquet's SARs). Prints one Markdown table per output root, one row per
pattern, plus the alerts on no pattern: alerts, SAR-filed share of the labelled ones, mean
percentile, share in the day's top 10%, and share above the 50%-precision threshold.
"""
import glob
import os
import sys
from collections import defaultdict

import pyarrow.parquet as pq


def percentiles(scores):
    """Average-rank percentile in (0, 1] of each score among `scores`."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    pct = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            pct[order[k]] = (i + j + 2) / 2 / len(scores)
        i = j + 1
    return pct


def threshold_at_precision(rows, want=0.5):
    """Lowest percentile whose alerts at or above it (labelled ones) have precision >= want."""
    labelled = sorted(((p, y) for p, y in rows if y is not None), reverse=True)
    best, tp = None, 0
    for n, (p, y) in enumerate(labelled, 1):
        tp += y
        if tp / n >= want and (n == len(labelled) or labelled[n][0] != p):
            best = p
    return best


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    key_path, inp, net, win, *runs = sys.argv[1:]
    key = pq.read_table(key_path).to_pylist()
    members = defaultdict(lambda: defaultdict(set))
    for r in key:
        for a in (r["from_address"], r["to_address"]):
            members[r["processing_date"].isoformat()][a].add(r["pattern"])
    truth = {r["alert_id"]: r["is_sar_filed"]
             for r in pq.read_table(os.path.join(inp, net, "ground_truth.parquet")).to_pylist()}
    for run in runs:
        name, root = run.split("=", 1)
        rows = []  # (patterns, percentile, label)
        paths = sorted(glob.glob(os.path.join(root, net, "*", win, "alert_scores.parquet")))
        if not paths:
            sys.exit(f"{root}: no {net}/*/{win}/alert_scores.parquet")
        for path in paths:
            date = path.split(os.sep)[-3]
            alerts = pq.read_table(os.path.join(inp, net, date, win, "alerts.parquet"),
                                   columns=["alert_id", "address"]).to_pylist()
            address = {a["alert_id"]: a["address"] for a in alerts}
            scores = pq.read_table(path, columns=["alert_id", "score"]).to_pylist()
            pct = percentiles([s["score"] for s in scores])
            for s, p in zip(scores, pct):
                kinds = members[date].get(address[s["alert_id"]], set())
                label = truth.get(s["alert_id"])
                rows.append((kinds, p, None if label is None else int(label)))
        t = threshold_at_precision([(p, y) for _, p, y in rows])
        print(f"\n{name}: {len(paths)} dates, {len(rows)} alerts; 50%-precision threshold: "
              + ("none reached" if t is None else f"percentile {t:.4f}"))
        print("| pattern | alerts | SAR-filed (labelled) | mean percentile | in the day's top 10% "
              "| above the 50%-precision threshold |")
        print("|---|---|---|---|---|---|")
        groups = sorted({k for ks, _, _ in rows for k in ks}) + ["(no pattern)"]
        for g in groups:
            sel = [(p, y) for ks, p, y in rows if (g in ks if ks else g == "(no pattern)")]
            lab = [y for _, y in sel if y is not None]
            sar = f"{sum(lab) / len(lab):.1%} of {len(lab)}" if lab else "–"
            above = "–" if t is None else f"{sum(p >= t for p, _ in sel) / len(sel):.1%}"
            print(f"| {g} | {len(sel)} | {sar} | {sum(p for p, _ in sel) / len(sel):.3f} "
                  f"| {sum(p > 0.9 for p, _ in sel) / len(sel):.1%} | {above} |")


if __name__ == "__main__":
    main()
