#!/usr/bin/env bash
# Installs the Debian tools the fixture generators call where Python cannot write a format:
# gsf (libgsf-bin) writes OLE compound files. Tests fail with a clear message without it.
set -u
command -v gsf >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
        install -y -qq libgsf-bin >/dev/null) \
        || echo "ensure_fixture_tools: could not install libgsf-bin" >&2
else
    echo "ensure_fixture_tools: not root or no apt-get; cannot install libgsf-bin" >&2
fi
