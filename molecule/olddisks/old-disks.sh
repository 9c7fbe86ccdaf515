#!/usr/bin/env bash
# Runs in the scenario's machine booted with prenixos.firstboot=0, before the real boot: the HDD pair
# gets the remains of a former install (GPT, an mdadm RAID1, LVM on it, ext4 with a file in it).
set -euxo pipefail
disk() { lsblk --nodeps --noheadings --output NAME,SERIAL | awk -v serial="$1" '$2 == serial { print $1 }'; }
a=$(disk pn-hdd1) b=$(disk pn-hdd2)
for d in "$a" "$b"; do
    sgdisk --new=1:0:0 --typecode=1:FD00 --change-name=1:old-raid "/dev/$d"
done
partx -u "/dev/$a"; partx -u "/dev/$b"; udevadm settle -t 30
mdadm --create /dev/md/old --level=1 --raid-devices=2 --metadata=1.2 --homehost=old --run "/dev/${a}1" "/dev/${b}1"
pvcreate -ff -y /dev/md/old
vgcreate old /dev/md/old
lvcreate -y -L 512M -n keep old
mkfs.ext4 -q -L keep /dev/old/keep
mkdir -p /run/old && mount /dev/old/keep /run/old
echo "written before first boot" > /run/old/precious.txt
umount /run/old
vgchange -an old
mdadm --stop /dev/md/old
sync
