#!/usr/bin/env bash
# Renders a `pipeline compare` report in headless Chromium, checks that its four plots are in
# the rendered page, and writes a screenshot.   usage: scripts/check_report.sh REPORT.html [OUT.png]
# Needs Debian's chromium (apt-get install -y chromium); not part of `make test`.
set -euo pipefail
html=$(realpath "$1")
png=${2:-${html%.html}.png}
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)")
svgs=$(chromium "${flags[@]}" --dump-dom "file://$html" 2>/dev/null | grep -o '<svg' | wc -l)
[ "$svgs" -eq 4 ] || { echo "expected 4 rendered plots, found $svgs" >&2; exit 1; }
chromium "${flags[@]}" --window-size=1180,1400 --screenshot="$png" "file://$html" >/dev/null 2>&1
[ -s "$png" ] || { echo "no screenshot written" >&2; exit 1; }
echo "rendered 4 plots; screenshot: $png"
