#!/usr/bin/env bash
# End-to-end bench (issues 3 and 8). Generates its data once under bench-data/ (git-ignored):
#   W1/W30: 30 realistic days (50K alerts, ~500K feature rows, ~2M money flows each);
#   S365:   365 small days, for the no-op rerun.
# Reports: seconds per day (W1, 1 and 2 workers), W30 with 1 and 2 workers and the speed-up,
# W1 with a model that uses the graph features, the decode floor (merely reading the needed columns with arrow-rs), the address-history pass
# alone (benches/history.rs: time, peak RSS and heap), peak RSS of W1 and W30,
# and the no-op rerun over 365 dates. Every figure is wall clock of the whole command
# (process start, model loading and the address-history pass included).
# usage: benches/e2e.sh            (DAYS=30 ALERTS=50000 SMALL_DAYS=365 to change the sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
days=${DAYS:-30}
alerts=${ALERTS:-50000}
small_days=${SMALL_DAYS:-365}
bin="$CARGO_TARGET_DIR/release/pipeline"
cargo build --release -q
cargo bench --no-run -q --bench floor --bench history 2>/dev/null

first=2025-10-01
last=$(date -d "$first + $((days - 1)) days" +%F)
data=bench-data/w${days}-a${alerts}-laundering
if [ ! -f "$data/input/torus/$last/195/META.json" ]; then
  echo "generating $days days of $alerts alerts into $data/input ..."
  /usr/bin/time -f "generate: %e s, peak RSS %M KB" \
    "$bin" generate --out "$data/input" --network torus --dates "$first..$last" --alerts-per-day "$alerts" --seed 7 --profile laundering
fi
du -sh "$data/input/torus/$first/195" | awk '{print "one day on disk: " $1}'

# The shipped graph, and the same without SHAP explanations (explain_json, upstream's default
# '') — the explanations alone cost more than everything else, so both are reported.
sed 's/^explain = true/explain = false/' pipelines/daily.toml > bench-data/daily-no-explain.toml
config() { # data dir, pipeline file[, models dir] → config path
  cat > "$1/config.toml" <<TOML
pipeline = "$PWD/$2"
network = "torus"
window_days = 195
input = "$PWD/$1/input"
output = "$PWD/$1/output"
models = "$PWD/${3:-trained_models}"
dates = "all"
workers = 1
TOML
  echo "$1/config.toml"
}
cfg=$(config "$data" bench-data/daily-no-explain.toml)

# run LABEL WORKERS DATES: a clean run; prints seconds and peak RSS, sets $secs and $rss.
run() {
  rm -rf "$data/output"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -o "$data/time.txt" -f "%M" "$bin" run "$cfg" --workers "$2" --dates "$3" > "$data/last-run.txt"
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  rss=$(tail -n1 "$data/time.txt")
  printf "%-26s %8.2f s   peak RSS %6d MB\n" "$1" "$secs" "$((rss / 1024))"
}

echo "== end to end, load $(cut -d' ' -f1 /proc/loadavg) before start"
cfg=$(config "$data" pipelines/daily.toml)
run "W1 with SHAP, 1 worker" 1 "$first"
run "W1 with SHAP, 2 workers" 2 "$first"
cp "$data/last-run.txt" "$data/w1-shap-run.txt"
cfg=$(config "$data" bench-data/daily-no-explain.toml)
echo "-- without SHAP explanations from here on"
run "W1, 1 worker" 1 "$first"
w1=$secs w1rss=$rss
run "W1, 2 workers" 2 "$first"
w1b=$secs w1rss2=$rss
cp "$data/last-run.txt" "$data/w1-run.txt"
# The graph features (docs/features.md) keep every flow and are computed only for a model that
# uses them: an alert scorer trained with them on the first two days (50 rounds) prices them.
gm="$data/models-graph"
if ! ls "$gm"/alert_scorer_v*.txt > /dev/null 2>&1; then
  mkdir -p "$gm"
  cp trained_models/alert_ranker_v* trained_models/cluster_scorer_v* "$gm"/
  "$bin" train "$cfg" --dates "$first..$(date -d "$first + 1 day" +%F)" --model alert_scorer \
    --models "$PWD/$gm" --iterations 50 > /dev/null
fi
cfg=$(config "$data" bench-data/daily-no-explain.toml "$gm")
run "W1 with graph features, 2 w" 2 "$first"
cp "$data/last-run.txt" "$data/w1-graph-run.txt"
cfg=$(config "$data" bench-data/daily-no-explain.toml)
run "W$days, 1 worker" 1 "$first..$last"
w30a=$secs w30rss1=$rss
run "W$days, 2 workers" 2 "$first..$last"
w30b=$secs w30rss=$rss
floor=$(cargo bench -q --bench floor -- "$data/input/torus/$first/195" | awk '{print $3}')
echo "decode floor (one day):    $floor s"
for w in 1 2; do cargo bench -q --bench history -- "$cfg" "$w"; done
awk -v w1="$w1" -v w1b="$w1b" -v a="$w30a" -v b="$w30b" -v n="$days" -v f="$floor" \
    -v r1="$w1rss" -v r1b="$w1rss2" -v r30="$w30rss" -v r30a="$w30rss1" 'BEGIN {
  printf "seconds per day:           %.2f (W1, 1 worker), %.2f (W%d / %d days, 2 workers)\n", w1, b / n, n, n
  printf "per day / decode floor:    %.2f (W%d, 2 workers, per day) vs target 1.5\n", (b / n) / f, n
  printf "W%d speed-up, 2 vs 1:      %.2fx (target 1.7x)\n", n, a / b
  printf "peak RSS W%d / W1:         %.2f (1 worker both), %.2f (2 workers both), %.2f (2 workers vs 1 worker W1) (target 1.2)\n", n, r30a / r1, r30 / r1b, r30 / r1
}'
echo "== per-stage summary of W1 with SHAP, 2 workers"
cat "$data/w1-shap-run.txt"
echo "== per-stage summary of W1 without SHAP, 2 workers"
cat "$data/w1-run.txt"
echo "== per-stage summary of W1 without SHAP, with the graph features, 2 workers"
cat "$data/w1-graph-run.txt"

small=bench-data/s${small_days}-laundering
slast=$(date -d "2025-01-01 + $((small_days - 1)) days" +%F)
if [ ! -f "$small/input/torus/$slast/195/META.json" ]; then
  echo "generating $small_days small days into $small/input ..."
  "$bin" generate --out "$small/input" --network torus --dates "2025-01-01..$slast" --alerts-per-day 20 --seed 7 --profile laundering > /dev/null
fi
scfg=$(config "$small" pipelines/daily.toml)
if ! "$bin" run "$scfg" --workers 2 > "$small/first-run.txt"; then
  echo "the first run over $small_days dates failed:"; tail "$small/first-run.txt"; exit 1
fi
echo "== no-op rerun over $small_days dates (3 runs)"
for i in 1 2 3; do
  t0=$(date +%s.%N)
  "$bin" run "$scfg" --workers 2 > "$small/noop.txt"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v i="$i" 'BEGIN { printf "  run %d: %.3f s\n", i, b - a }'
done
grep -m1 "^plan:" "$small/noop.txt"
