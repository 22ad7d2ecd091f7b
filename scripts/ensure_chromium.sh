#!/usr/bin/env bash
# Installs Debian's headless Chromium and its WebDriver for the report tests (Selenium drives
# report.html in a real browser) when they are missing. Run by `make test`.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq chromium chromium-driver >/dev/null 2>&1 \
        || { apt-get -o DPkg::Lock::Timeout=900 update -qq \
             && apt-get -o DPkg::Lock::Timeout=900 install -y -qq chromium chromium-driver \
                >/dev/null; } \
        || { echo "ensure_chromium: could not install chromium and chromium-driver" >&2; exit 1; }
else
    echo "ensure_chromium: not root or no apt-get; cannot install chromium and chromium-driver" >&2
    exit 1
fi
