#!/usr/bin/env bash
# Browser tests drive Debian's Chromium (a test tool's own browser download does not work on
# machines without general internet access). Install it when missing and we are allowed to.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
else
  echo "chromium is missing and cannot be installed here (not root); browser tests will fail" >&2
  exit 1
fi
