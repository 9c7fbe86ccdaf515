# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage plan's contract, defined once: what the planner writes, the applier builds and
the renderers (summary tree, NixOS, disko) read.

Every name here is data or a pure function; nothing reads the machine. ``docs/contracts.md``
describes the plan's fields; this module holds the values those fields are checked against.
"""
from __future__ import annotations

import re

# Version 2 names each disk by what it is (``identity``: its WWN, else its serial, else its by-id link) beside
# its kernel name; version 1 plans, kernel names only, are still read.
PLAN_VERSION = 2
READABLE_PLAN_VERSIONS = (1, 2)

# GPT partition types the plan uses, as sgdisk's short codes, and their GUIDs (what lsblk reports).
ESP_TYPE = "EF00"
RAID_TYPE = "FD00"
LVM_TYPE = "8E00"
GPT_TYPE_GUIDS = {
    ESP_TYPE: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",  # EFI system partition
    RAID_TYPE: "a19d880f-05fc-4d3b-a006-743f0f84911e",  # Linux RAID
    LVM_TYPE: "e6d6d379-f507-44c2-a23c-238f2a3df928",  # Linux LVM
    "8300": "0fc63daf-8483-4772-8e79-3d69d8477de4",  # Linux filesystem
    "8200": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",  # Linux swap
}

RAID_LEVELS = ("raid0", "raid1", "raid4", "raid5", "raid6", "raid10")
MD_METADATA = "1.2"

# Names of arrays, volume groups and logical volumes in a plan: mdadm keeps 32 bytes of an array's name.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}\Z")
# Volume group names the planner accepts as options: 16 characters, so that what is derived from them
# (partition labels "<vg>-raid<k>", "<vg>-esp<k>", array names, ext4 labels of their volumes) stays
# within every tool's limit.
VG_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,15}\Z")
# File system labels: ext4 keeps 16 bytes, FAT 11 (the planner's ESP labels are EFI, EFI2, ...).
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,15}\Z")
# Kernel names of disks (sda, nvme0n1, vdb).
DISK_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def human_size(size):
    """``1.5 GiB``-style size, as the plan's notes and its summary write sizes."""
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= factor:
            return "%.1f %s" % (size / factor, unit)
    return "%d B" % size


def partition_device(disk_name, number):
    """``/dev/sda2``, ``/dev/nvme0n1p2``: a ``p`` when the disk name ends in a digit."""
    separator = "p" if disk_name[-1:].isdigit() else ""
    return "/dev/%s%s%d" % (disk_name, separator, number)
