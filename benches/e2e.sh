#!/usr/bin/env bash
# End-to-end bench: seconds per realistic day (50K alerts, ~500K feature rows, ~2M money
# flows) with 1 and 2 workers. Generates its data once under bench-data/ (git-ignored).
# usage: benches/e2e.sh [DAYS]   (default 4 days; set ALERTS=… to change the day size)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
days=${1:-4}
alerts=${ALERTS:-50000}
bin="$CARGO_TARGET_DIR/release/pipeline"
cargo build --release -q
data=bench-data/a${alerts}
last=$(date -d "2025-10-01 + $((days - 1)) days" +%F)
if [ ! -d "$data/input/torus/$last" ]; then
  echo "generating $days days of $alerts alerts into $data/input ..."
  /usr/bin/time -f "generate: %e s, peak RSS %M KB" \
    "$bin" generate --out "$data/input" --network torus --dates "2025-10-01..$last" --alerts-per-day "$alerts" --seed 7
fi
du -sh "$data/input/torus/2025-10-01/195" | awk '{print "one day on disk: " $1}'
cat > "$data/config.toml" <<TOML
pipeline = "$PWD/pipelines/daily.toml"
network = "torus"
window_days = 195
input = "$PWD/$data/input"
output = "$PWD/$data/output"
models = "$PWD/trained_models"
dates = "all"
workers = 1
TOML
run() { # label, workers, dates
  rm -rf "$data/output"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "  peak RSS %M KB" "$bin" run "$data/config.toml" --workers "$2" --dates "$3" > "$data/last-run.txt"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v l="$1" 'BEGIN { printf "%-28s %8.2f s\n", l, b - a }'
}
echo "== end to end (wall clock, including process start and model loading)"
run "1 day,  1 worker"   1 2025-10-01
run "1 day,  2 workers"  2 2025-10-01
run "$days days, 1 worker"  1 "2025-10-01..$last"
run "$days days, 2 workers" 2 "2025-10-01..$last"
echo "== per-stage summary of the last run"
cat "$data/last-run.txt"
