#!/usr/bin/env bash
# The end-to-end test screenshots the Prefect UI with Debian's chromium. A fresh machine (and CI)
# starts without it, so `make test` installs it first when it can (root, apt-get); otherwise it
# says how, and the end-to-end test fails with the same message.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the end-to-end UI screenshot (log: /tmp/technic-chromium.log)"
  if { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
       >/tmp/technic-chromium.log 2>&1; then
    exit 0
  fi
  tail -5 /tmp/technic-chromium.log >&2
fi
echo "warning: chromium not installed; the e2e test will fail. Install it: sudo apt-get install -y chromium" >&2
exit 0
