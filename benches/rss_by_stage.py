"""benches/rss_by_stage.py CONFIG WORKERS: runs the pipeline with --trace, samples its RSS every 20 ms,
and prints each stage's peak RSS (the highest sample while its span was open) and the RSS when
it ended. Run from the repository root, after benches/scale.sh has generated the days, e.g.
  python3 benches/rss_by_stage.py bench-data/scale/x10/config-w1.toml 1
(clear that config's output directory first, so that every stage runs)."""
import json, os, subprocess, sys, time
cfg, workers = sys.argv[1], sys.argv[2]
target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/aml-pipeline/target"))
trace = "bench-data/rss-trace.json"
t0 = time.monotonic()
p = subprocess.Popen([os.path.join(target, "release", "pipeline"), "run", cfg,
                      "--workers", workers, "--trace", trace], stdout=subprocess.DEVNULL)
samples = []
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    samples.append((time.monotonic() - t0, int(line.split()[1]) / 1024))
    except FileNotFoundError:
        break
    time.sleep(0.02)
ev = json.load(open(trace))
ev = ev["traceEvents"] if isinstance(ev, dict) else ev
spans = {}
for e in ev:
    if e.get("ph") in ("B", "E") and e.get("name") in ("decode", "feature_join", "score", "rank", "cluster_score", "write", "validate", "submit"):
        spans.setdefault((e["name"], e.get("tid")), []).append((e["ph"], e["ts"] / 1e6))
    elif e.get("ph") == "X" and e.get("name") in ("decode", "feature_join", "score", "rank", "cluster_score", "write", "validate", "submit"):
        spans.setdefault((e["name"], e.get("tid")), []).extend([("B", e["ts"] / 1e6), ("E", (e["ts"] + e["dur"]) / 1e6)])
# The trace clock starts at process start, about t0.
print(f"{'stage':14} {'start s':>8} {'end s':>8} {'RSS at start':>13} {'peak RSS':>9} {'RSS at end':>11}  (MB)")
rows = []
for (name, tid), evs in spans.items():
    b = [t for ph, t in evs if ph == "B"]; e = [t for ph, t in evs if ph == "E"]
    for s, t in zip(b, e):
        rows.append((s, t, name))
def at(t):
    best = None
    for ts, r in samples:
        if ts <= t: best = r
    return best or 0
for s, t, name in sorted(rows):
    inside = [r for ts, r in samples if s <= ts <= t] or [at(t)]
    print(f"{name:14} {s:8.2f} {t:8.2f} {at(s):13.0f} {max(inside):9.0f} {at(t):11.0f}")
print(f"process peak {max(r for _, r in samples):.0f} MB over {samples[-1][0]:.1f} s")
