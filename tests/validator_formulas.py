"""The subnet validator's scores of one submitted date, computed the way its Python code does
(numpy histogram, scipy entropy and spearmanr, a Mann-Whitney AUC), independently of the Rust
implementation, which tests/validate.rs compares with this script's output.

usage: validator_formulas.py SCORES ALERTS LABELS CONSENSUS URL DAYS
  SCORES     the miner's alert_scores.parquet (alert_id, score, model_version)
  ALERTS     the batch's alerts.parquet (alert_id, address)
  LABELS     address_labels.parquet (address, risk_level)
  CONSENSUS  a parquet of (alert_id, score): the median of every miner's score per alert
  URL        the model_github_url sent with every row
  DAYS       days since the miner's first submission
Prints JSON: tier1, tier2, tier3a and the final score.
"""
import json
import sys

import numpy as np
import pyarrow.parquet as pq
from scipy.stats import entropy, mannwhitneyu, spearmanr


def main(scores_path, alerts_path, labels_path, consensus_path, url, days):
    s = pq.read_table(scores_path).to_pydict()
    ids, scores, versions = s["alert_id"], s["score"], s["model_version"]
    alerts = pq.read_table(alerts_path).to_pydict()
    address = dict(zip(alerts["alert_id"], alerts["address"]))

    n, u = len(ids), len(set(ids))
    batch = len(set(alerts["alert_id"]))
    tier1 = {
        "completeness": min(u / batch, 1.0),
        "score_range": 1 - sum(1 for x in scores if x < 0 or x > 1) / n,
        "no_duplicates": 1.0 if n == u else u / n,
        "metadata": 1 - sum(1 for v in versions if v == "" or url == "") / n,
    }
    tier1["score"] = 0.25 * sum(tier1.values())

    hist, _ = np.histogram(scores, bins=10, range=(0, 1))
    e = float(entropy(hist / len(scores) + 1e-10) / np.log(10))
    c = pq.read_table(consensus_path).to_pydict()
    consensus = dict(zip(c["alert_id"], c["score"]))
    pairs = [(x, consensus[k]) for k, x in zip(ids, scores) if k in consensus]
    if len(pairs) < 2:
        r = 0.0
    else:
        rho = spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
        r = float((rho + 1) / 2)
    by_address = {}
    for k, x in zip(ids, scores):
        if k in address:
            by_address.setdefault(address[k], []).append(x)
    penalties = []
    for xs in by_address.values():
        if len(xs) > 1:
            sd = float(np.std(xs))
            penalties.append(0 if sd < 0.10 else -0.05 if sd < 0.15 else -0.10 if sd < 0.25 else -0.15)
    if not by_address:
        a = 0.0
    elif not penalties:
        a = 1.0
    else:
        a = max(0.0, 1 + float(np.mean(penalties)))
    tier2 = {"entropy": e, "rank_correlation": r, "consistency": 0.7, "address_consistency": a}
    tier2["score"] = 0.25 * (e + r + 0.7 + a)

    lab = pq.read_table(labels_path).to_pydict()
    rows_of = {}
    for addr, level in zip(lab["address"], lab["risk_level"]):
        if level in ("high", "critical"):
            rows_of.setdefault(addr, []).append(1)
        elif level in ("low", "medium"):
            rows_of.setdefault(addr, []).append(0)
    pos, neg = [], []
    for k, x in zip(ids, scores):
        for y in rows_of.get(address.get(k), []):
            (pos if y else neg).append(x)
    auc = float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))) if pos and neg else None
    tier3a = {"auc": auc, "coverage": (len(pos) + len(neg)) / u, "labelled": len(pos) + len(neg)}

    tier3 = 0.5 * auc * tier3a["coverage"] if auc is not None else 0.0
    if tier1["score"] < 1:
        final = 0.0
    elif days < 29:
        final = 0.1
    else:
        final = 0.1 * tier2["score"] + 0.9 * tier3
    print(json.dumps({"tier1": tier1, "tier2": tier2, "tier3a": tier3a, "final": final}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], a[4], int(a[5]))
