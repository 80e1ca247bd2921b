#!/usr/bin/env bash
# Scale bench (issue 20): one date at 1×, 3× and 10× the realistic size, side by side.
# Generates its data once under bench-data/scale/ (git-ignored): date 2025-07-01, network torus,
# window 195, seed 7, no earlier dates (so no address history), 50,000 alerts per 1× (the 10×
# day takes ~2 min and ~1.4 GB to generate). Runs the pipeline on each day with explanations off
# (pipelines/daily.toml with `explain = false`), with 1 and with 2 workers, and prints one table
# per worker count: wall clock of the whole command, peak RSS (/usr/bin/time), and each stage's
# time from the run summary (summed over workers), each with its ratio to the 1× figure.
# The outputs of each run stay in bench-data/scale/laundering-x<size>/output-w<workers>.
# With PANDAS=1 it also times the pandas reference of ../shared/peer (pandas_job.py, explain
# off, the same day) and adds a table for it (the 10× day needs ~6 GB).
# With REPS=N every run is repeated N times, the repetitions interleaved (all sizes and worker
# counts once, then again), and each figure is the median of its N (this machine is noisy).
# usage: benches/scale.sh            (SIZES="1 3" for a quick run; ALERTS=50000 per 1×;
#                                     WORKERS="1 2"; PANDAS=1; REPS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
sizes=${SIZES:-1 3 10}
alerts=${ALERTS:-50000}
workers=${WORKERS:-1 2}
reps=${REPS:-1}
date=2025-07-01
bin="$CARGO_TARGET_DIR/release/pipeline"
cargo build --release -q

root=bench-data/scale
mkdir -p "$root"
sed 's/^explain = true/explain = false/' pipelines/daily.toml > "$root/daily-no-explain.toml"
for s in $sizes; do
  data=$root/laundering-x$s
  if [ ! -f "$data/input/torus/$date/195/META.json" ]; then
    echo "generating the ${s}× day ($((s * alerts)) alerts) into $data/input ..."
    /usr/bin/time -f "generate: %e s, peak RSS %M KB" \
      "$bin" generate --out "$data/input" --network torus --dates "$date" \
      --alerts-per-day "$((s * alerts))" --seed 7 --profile laundering
  fi
done

results=$root/results.tsv
: > "$results"
echo "== load $(cut -d' ' -f1 /proc/loadavg) before start"
for r in $(seq "$reps"); do
for w in $workers; do
  for s in $sizes; do
    data=$root/laundering-x$s
    out=$PWD/$data/output-w$w
    cat > "$data/config-w$w.toml" <<TOML
pipeline = "$PWD/$root/daily-no-explain.toml"
network = "torus"
window_days = 195
input = "$PWD/$data/input"
output = "$out"
models = "$PWD/trained_models"
dates = "$date"
workers = $w
TOML
    rm -rf "$out"
    t0=$(date +%s.%N)
    /usr/bin/time -o "$data/time-w$w.txt" -f "%M" \
      "$bin" run "$data/config-w$w.toml" --workers "$w" > "$data/run-w$w.txt"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v s="$s" -v w="$w" 'BEGIN { printf "%s\t%s\twall (s)\t%.2f\n", w, s, b - a }' >> "$results"
    printf "%s\t%s\tpeak RSS (MB)\t%d\n" "$w" "$s" "$(($(tail -n1 "$data/time-w$w.txt") / 1024))" >> "$results"
    # The run summary: one line per stage after the header, up to "… dates completed in …".
    awk -v s="$s" -v w="$w" '
      /^stage +kind/ { on = 1; next }
      / dates completed in / { on = 0 }
      on && NF >= 8 { printf "%s\t%s\t%s (ms)\t%.0f\n", w, s, $1, $6 * 1000 }
    ' "$data/run-w$w.txt" >> "$results"
    echo "  ${s}×, $w worker(s): done (repetition $r)"
  done
done

if [ "${PANDAS:-0}" = 1 ]; then
  for s in $sizes; do
    data=$root/laundering-x$s
    rm -rf "$data/output-pandas"
    t0=$(date +%s.%N)
    /usr/bin/time -o "$data/time-pandas.txt" -f "%M" python3 ../shared/peer/pandas_job.py \
      "$data/input" torus "$date" 195 trained_models "$data/output-pandas" --explain off > /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v s="$s" 'BEGIN { printf "pandas\t%s\twall (s)\t%.2f\n", s, b - a }' >> "$results"
    printf "pandas\t%s\tpeak RSS (MB)\t%d\n" "$s" "$(($(tail -n1 "$data/time-pandas.txt") / 1024))" >> "$results"
    echo "  ${s}×, pandas: done (repetition $r)"
  done
fi
done
echo "== load $(cut -d' ' -f1 /proc/loadavg) at the end"

# One table per worker count (and pandas): a row per figure, a column per size, with the ratio
# to 1×; each figure the median of its repetitions.
awk -F'\t' -v sizes="$sizes" -v reps="$reps" '
  function median(key,    i, j, t, c) {
    c = cnt[key]
    for (i = 2; i <= c; i++)
      for (j = i; j > 1 && all[key, j - 1] + 0 > all[key, j] + 0; j--) {
        t = all[key, j]; all[key, j] = all[key, j - 1]; all[key, j - 1] = t
      }
    return c % 2 ? all[key, (c + 1) / 2] : (all[key, c / 2] + all[key, c / 2 + 1]) / 2
  }
  { key = $1 SUBSEP $2 SUBSEP $3; all[key, ++cnt[key]] = $4
    if (!(($1 SUBSEP $3) in seen)) { seen[$1 SUBSEP $3] = 1; order[$1, ++n[$1]] = $3 }
    if (!($1 in ws)) { ws[$1] = 1; wl[++nw] = $1 } }
  END {
    for (key in cnt) v[key] = median(key)
    ns = split(sizes, sz, " ")
    for (i = 1; i <= nw; i++) {
      w = wl[i]
      printf "\n== %s\n%-22s", (w == "pandas" ? "pandas reference" : w " worker(s)"), ""
      for (j = 1; j <= ns; j++) printf "%20s", sz[j] "×"
      printf "\n"
      for (k = 1; k <= n[w]; k++) {
        m = order[w, k]
        printf "%-22s", m
        base = v[w, sz[1], m]
        for (j = 1; j <= ns; j++) {
          x = v[w, sz[j], m]
          if (x == "") { printf "%20s", "-"; continue }
          if (j == 1 || base + 0 == 0) printf "%20s", x
          else printf "%12s (%5.1f×)", x, x / base
        }
        printf "\n"
      }
    }
    printf "\nmedians of %d repetition(s); ratios are to the %s× column; targets: wall at 10× <= 11×, each stage <= 12×\n", reps, sz[1]
  }' "$results"
