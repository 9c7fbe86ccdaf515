#!/bin/sh
# Puts the scenario's disks back to blank between rounds, so that no old signature is found again when the
# next round makes its partitions, arrays and volumes at the same offsets: everything on them let go (swap,
# mounts, LVs, arrays), then each disk discarded whole. The launcher gives every disk discard=unmap on a raw
# file, so a discarded range reads back as zeros; the edges are read back to be sure.
# Test only: runs in the scenario's guest, on the emulated disks (serial pn-ssdN / pn-hddN).
set -eu
swapoff -a
umount -R /mnt 2>/dev/null || true
vgchange -an >/dev/null 2>&1 || true
mdadm --stop --scan >/dev/null 2>&1 || true
for disk in $(lsblk --nodeps --noheadings --output NAME,SERIAL | awk '$2 ~ /^pn-(ssd|hdd)[0-9]+$/ {print $1}'); do
    blkdiscard -f /dev/"$disk"
    last=$(( ($(blockdev --getsz /dev/"$disk") - 2048) * 512 ))
    for offset in 0 "$last"; do
        if ! dd if=/dev/"$disk" bs=1M count=1 skip="$offset" iflag=direct,skip_bytes status=none |
                cmp -s -n 1048576 - /dev/zero; then
            echo "blank-disks: /dev/$disk does not read back as zeros at byte $offset after the discard" >&2
            exit 1
        fi
    done
    blockdev --rereadpt /dev/"$disk"
done
udevadm settle -t 30
