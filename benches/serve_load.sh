#!/usr/bin/env bash
# Load bench of `pipeline serve` (issue 7): wrk at 64 connections on pages of 1000 rows of
# /scores/alerts/{date} while a backfill writes new dates into the same output tree.
# Reports wrk's requests/s and latency percentiles, and fails if any response was not 2xx
# (wrk's non-2xx count, socket errors, or a 5xx in the server's own /metrics).
# usage: benches/serve_load.sh     (ALERTS=50000 DAYS=8 SECONDS_=30 CONNS=64 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
alerts=${ALERTS:-50000}
days=${DAYS:-8}
duration=${SECONDS_:-30}
conns=${CONNS:-64}
bin="$CARGO_TARGET_DIR/release/pipeline"
cargo build --release -q
if ! command -v wrk >/dev/null; then
  echo "installing wrk with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

first=2025-10-01
last=$(date -d "$first + $((days - 1)) days" +%F)
half=$(date -d "$first + $((days / 2 - 1)) days" +%F)
rest=$(date -d "$half + 1 day" +%F)
data=bench-data/serve-d${days}-a${alerts}-laundering
if [ ! -f "$data/input/torus/$last/195/META.json" ]; then
  echo "generating $days days of $alerts alerts into $data/input ..."
  "$bin" generate --out "$data/input" --network torus --dates "$first..$last" --alerts-per-day "$alerts" --seed 7 --profile laundering >/dev/null
fi
sed 's/^explain = true/explain = false/' pipelines/daily.toml > "$data/pipeline.toml"
cat > "$data/config.toml" <<TOML
pipeline = "$PWD/$data/pipeline.toml"
network = "torus"
window_days = 195
input = "$PWD/$data/input"
output = "$PWD/$data/output"
models = "$PWD/trained_models"
dates = "all"
workers = 1
TOML
rm -rf "$data/output"
echo "writing the first $((days / 2)) dates ..."
"$bin" run "$data/config.toml" --dates "$first..$half" >/dev/null

"$bin" serve "$data/config.toml" --bind 127.0.0.1:0 > "$data/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q http "$data/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$data/serve.log")
pages=$((alerts / 1000))
cat > "$data/pages.lua" <<LUA
-- every connection walks the pages of 1000 rows of the first date
local i = 0
request = function()
  i = (i + 1) % $pages
  return wrk.format("GET", "/scores/alerts/$first?limit=1000&offset=" .. (i * 1000))
end
LUA
curl -sf "$url/scores/alerts/$first?limit=1000" > "$data/first-page.json"
echo "first page: $(head -c 160 "$data/first-page.json") ..." 

echo "backfilling $rest..$last while wrk runs $duration s at $conns connections ..."
"$bin" run "$data/config.toml" --dates "$rest..$last" > "$data/backfill.log" 2>&1 &
backfill=$!
wrk -t2 -c"$conns" -d"${duration}s" --latency -s "$data/pages.lua" "$url" | tee "$data/wrk.txt"
wait $backfill && echo "backfill: done ($(grep -c . "$data/backfill.log") lines of log)"
served=$(curl -sf "$url/dates/available" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_count"])')
echo "dates served after the backfill: $served of $days"
errors=$(curl -sf "$url/metrics" | awk '/^aml_http_requests_total/ && /status="5/ { n += $2 } END { print n + 0 }')
echo "5xx answers counted by the server: $errors"
if grep -q -e 'Non-2xx' -e 'Socket errors' "$data/wrk.txt" || [ "$errors" != 0 ] || [ "$served" != "$days" ]; then
  echo "FAIL: errors under load" >&2
  exit 1
fi
echo "OK: zero errors"
