#!/bin/sh
# Puts the scenario's disks back to blank between rounds, leaf to root, so that no old signature is found
# again when the next round makes its partitions, arrays and volumes at the same offsets.
# Test only: runs in the scenario's guest, on the emulated disks (serial pn-ssdN / pn-hddN).
set -eu
swapoff -a
umount -R /mnt 2>/dev/null || true
for lv in $(lvs --noheadings -o lv_path); do
    lvchange -ay "$lv"
    wipefs -a -q "$lv"
done
for vg in $(vgs --noheadings -o vg_name); do vgremove -ff -y "$vg" >/dev/null; done
for pv in $(pvs --noheadings -o pv_name); do pvremove -ff -y "$pv" >/dev/null; done
for md in /dev/md/*; do
    if [ -b "$md" ]; then
        wipefs -a -q "$md"
        mdadm --stop "$md" >/dev/null 2>&1
    fi
done
mdadm --stop --scan >/dev/null 2>&1 || true
for disk in $(lsblk --nodeps --noheadings --output NAME,SERIAL | awk '$2 ~ /^pn-(ssd|hdd)[0-9]+$/ {print $1}'); do
    for part in /dev/"$disk"?*; do
        if [ -b "$part" ]; then
            mdadm --zero-superblock "$part" >/dev/null 2>&1 || true
            wipefs -a -q "$part"
        fi
    done
    wipefs -a -q /dev/"$disk"
    sgdisk --zap-all /dev/"$disk" >/dev/null
    # Blank means blank at the edges too (storage_apply reads the first and last MiB of a disk blkid calls blank).
    sectors=$(blockdev --getsz /dev/"$disk")
    dd if=/dev/zero of=/dev/"$disk" bs=512 count=2048 conv=fsync oflag=direct status=none
    dd if=/dev/zero of=/dev/"$disk" bs=512 seek=$((sectors - 2048)) count=2048 conv=fsync oflag=direct status=none
done
udevadm settle -t 30
