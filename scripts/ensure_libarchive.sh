#!/usr/bin/env bash
# Installs Debian's libarchive13 (the C library behind libarchive-c, which reads 7z and RAR)
# when it is missing. Base images ship it; this covers a slimmer machine.
set -u
ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13' && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    for pkg in libarchive13 libarchive13t64; do  # the name changed with Debian 13's time_t move
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
            install -y -qq "$pkg" >/dev/null 2>&1 && exit 0
    done
    echo "ensure_libarchive: could not install libarchive13" >&2
    exit 1
else
    echo "ensure_libarchive: libarchive13 missing and cannot install it (not root)" >&2
    exit 1
fi
