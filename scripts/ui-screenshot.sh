#!/usr/bin/env bash
# Screenshot a page (e.g. the Prefect UI at http://127.0.0.1:4200/v2/runs) with headless Chromium.
# Needs Debian's chromium (.ci/run installs it). Usage: ui-screenshot.sh URL OUT.png [WIDTH,HEIGHT]
# The background-networking flags keep Chromium from calling out on a machine with no internet.
set -u
url=$1; out=$2; size=${3:-1400,900}
profile=$(mktemp -d)
timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-dev-shm-usage --hide-scrollbars \
  --user-data-dir="$profile" --screenshot="$out" --window-size="$size" \
  --virtual-time-budget=15000 "$url" 2>"${TMPDIR:-/tmp}/ui-screenshot.log"
rc=$?
rm -rf "$profile"
echo "chromium exit $rc -> $out"
exit $rc
