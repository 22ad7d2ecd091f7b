#!/usr/bin/env bash
# Installs Debian's headless Chromium for the report rendering test when it is missing.
# The test itself skips with a clear message where this could not be done.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "ensure_chromium: could not install chromium; browser tests will skip" >&2
else
    echo "ensure_chromium: not root or no apt-get; browser tests will skip" >&2
fi
