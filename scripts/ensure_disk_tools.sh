#!/usr/bin/env bash
# Installs the Debian tools the disk-image fixtures are built with (synthetic_fixtures/disks.py).
# The disk tests fail with the missing package's name where this could not be done.
set -u
need=""
for pair in mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs debugfs:e2fsprogs \
            mkntfs:ntfs-3g ntfscp:ntfs-3g xorriso:xorriso sfdisk:fdisk \
            ewfacquirestream:ewf-tools cryptsetup:cryptsetup-bin mkfs.exfat:exfatprogs \
            mkudffs:udftools mkapfs:apfsprogs hformat:hfsutils; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${pair%%:*}" >/dev/null 2>&1 \
        || need="$need ${pair##*:}"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 \
        install -y -qq $need >/dev/null) \
        || echo "ensure_disk_tools: could not install$need; disk tests will fail" >&2
else
    echo "ensure_disk_tools: not root or no apt-get; install$need" >&2
fi
