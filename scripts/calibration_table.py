#!/usr/bin/env python3
"""Tabulates the effect of each score calibration on held-out dates.

Usage: calibration_table.py NETWORK WINDOW NAME=OUTPUT_ROOT ...
Reads each output root's validation.json per date and validation summary and prints one
Markdown row per calibration: means over the dates of the template's behaviour tier and total,
the validator's Tier 2 parts and bounds, Tier 3A AUC × coverage, the expected reward (bounds:
the rank correlation with the miners' consensus is unknown here, and equal for every monotone
calibration), ground-truth AUC, average precision and Brier score.
"""
import glob, json, os, statistics as st, sys

net, win, *runs = sys.argv[1:]
print("| calibration | median score | behaviour | template total | T2 entropy | T2 bounds | T3A AUC × cov | reward bounds | GT AUC | GT AP | Brier |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for run in runs:
    name, root = run.split("=", 1)
    summary = json.load(open(f"{root}/{net}/validation_summary_{win}d.json"))["dates"]
    days = [json.load(open(p)) for p in sorted(glob.glob(f"{root}/{net}/*/{win}/validation.json"))]
    m = lambda xs: st.mean(xs)
    med = m([float(next(c["detail"].split()[1] for c in d["behaviour"]["checks"] if c["name"] == "median_range")) for d in days])
    t2 = [d["validator"]["tier2"] for d in days]
    t3 = [d["validator"]["tier3a"] for d in days]
    gt = [d["ground_truth"] for d in days]
    lo = m([s["reward"]["bounds"][0] for s in summary])
    hi = m([s["reward"]["bounds"][1] for s in summary])
    t2lo = m([s["tier2_bounds"][0] for s in summary])
    t2hi = m([s["tier2_bounds"][1] for s in summary])
    print(f"| {name} | {med:.3f} | {m([d['behaviour']['score'] for d in days]):.3f} | {m([d['total'] for d in days]):.4f} "
          f"| {m([t['entropy'] for t in t2]):.3f} | {t2lo:.3f}–{t2hi:.3f} | {m([t['auc'] for t in t3]):.4f} × {m([t['coverage'] for t in t3]):.3f} "
          f"| {lo:.4f}–{hi:.4f} | {m([g['auc_roc'] for g in gt]):.4f} | {m([g['average_precision'] for g in gt]):.4f} | {m([g['brier'] for g in gt]):.4f} |")
