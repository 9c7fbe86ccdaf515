#!/usr/bin/env bash
# Runs in the scenario's machine booted with prenixos.firstboot=0, before the real boot: first boot
# itself builds the plan on all four HDDs (an installed server's layout), a file goes onto /data, and
# the superblock UUID of each large member is written into that file. Then everything is let go
# cleanly; the launcher takes the fourth HDD out ("gone") before the real boot.
set -euxo pipefail
sed 's/ *prenixos\.firstboot=0//' /proc/cmdline > /run/cmdline-build
mount --bind /run/cmdline-build /proc/cmdline
python3 -I /usr/local/lib/pre-nixos/pre_nixos_firstboot.py
umount /proc/cmdline
python3 - <<'PY'
import json
phase = json.load(open("/run/pre-nixos/status.json"))["phases"]["storage_apply"]
assert phase["state"] == "done", phase
PY
# An installed server's arrays have long been in sync: wait for that here. mdadm makes a new RAID5 by
# recovering onto its last member; until that ends the array needs every other member. The planner orders the
# members by kernel name, which differ from boot to boot (virtio-scsi, a USB stick), so the HDD taken out may not
# be the one being recovered, and the next boot would find an array it cannot start and no file to read (seen:
# 2 members in sync and the spare, "inactive"). mdadm --wait fails when there was nothing to wait for.
started=$SECONDS
for md in /dev/md/*; do mdadm --wait "$md" || true; done
echo "arrays in sync after $((SECONDS - started)) s"
cat /proc/mdstat
if grep -E 'resync|recover' /proc/mdstat; then exit 1; fi
{
    echo "written by the installed system"
    for member in $(mdadm --detail --export /dev/md/large | sed -n 's/^MD_DEVICE_.*_DEV=//p' | sort); do
        echo "$member $(mdadm --examine --export "$member" | sed -n 's/^MD_UUID=//p')"
    done
} > /mnt/data/precious.txt
cat /mnt/data/precious.txt
umount -R /mnt
swapoff -a
vgchange -an
mdadm --stop --scan
sync
