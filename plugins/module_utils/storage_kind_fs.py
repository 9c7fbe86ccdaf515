# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filesystem room of the storage engine: the filesystems on ESPs and LVs, swap, and the mounts.

Here: the plan's mount points and what it puts directly on a device (``FilesystemPlan``), whether
a filesystem found is the planned one (``filesystem_matches``) and what uses a device (``usage``),
unmounting and stopping swap (``teardown_mounts``), making filesystems, mounting and enabling swap
(``FilesystemBuild``), which mount targets a command may name (``MountGuard``), and the mounts and
swaps in the layout.

The build steps, and why each one is safe to re-run after a kill between any two commands:

``mkfs.vfat -F 32 -n LABEL`` (ESPs, stage 2)
    Only when ``blkid -p`` finds nothing on the partition, checked again right before.
``mkfs.ext4 -L LABEL [-i RATIO]`` / ``mkswap -L LABEL`` (on LVs, in the stage of the step before)
    Only when ``blkid -p`` finds nothing, checked again right before: a filesystem with the
    planned type and label is kept, anything else stops the run. mke2fs writes its superblock
    last, so a killed mkfs leaves a device blkid still sees as blank.
``udevadm settle`` / ``mkdir -p`` / ``mount`` (``/`` first, then by depth) / ``swapon`` (stage 3)
    Checked against mountinfo and /proc/swaps; mounts by label when the label is unique on the
    machine, else by device (and a note says so: a live stick's ESP is often labelled EFI too).
    The settle after new filesystems lets udev publish their labels first.

Teardown, the first of the kinds: ``umount`` (never lazy; busy → fail with a hint), ``swapoff``.

May import storage_step, storage_state(_model) and storage_contract; no other room.
"""
from __future__ import annotations

import os

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import (
    ARRAY_STAGE,
    LAST_STAGE,
    PREVIOUS_STAGE,
    ApplyError,
    Step,
    describe_probe,
    device_label,
    is_clean_abspath,
    probed_before,
)


def target_under(root, mountpoint):
    return root if mountpoint == "/" else root.rstrip("/") + mountpoint


def filesystem_matches(probe, expected):
    """``expected`` is ``(type, label)``."""
    return probe.get("TYPE") == expected[0] and probe.get("LABEL") == expected[1]


def usage(state, kname):
    """``, mounted at X, active swap`` (empty when nothing uses the device)."""
    uses = ["mounted at %s" % mount["mountpoint"] for mount in state.mounts_of(kname)]
    if state.swap_active(kname):
        uses.append("active swap")
    return ", " + ", ".join(uses) if uses else ""


# ---------------------------------------------------------------- the plan


class FilesystemPlan:
    """Part of ``PlanView``: the filesystems on planned partitions (the ESPs) and LVs, and where they are mounted."""

    def check_mountpoints(self):
        seen = set()
        for entry in self.partitions + self.lvs:
            mountpoint = entry.get("mountpoint")
            if mountpoint is None:
                continue
            if not is_clean_abspath(mountpoint):
                self.errors.append("mountpoint %r is not a clean absolute path" % (mountpoint,))
            elif mountpoint in seen:
                self.errors.append("mountpoint %s is planned twice" % mountpoint)
            seen.add(mountpoint)

    def esps(self):
        return [p for p in self.partitions if p.get("filesystem") == "vfat"]

    def filesystem_for(self, device):
        """``(type, label)`` the plan puts directly on ``device`` (a partition or an LV path)."""
        part = self.partition_by_device.get(device)
        if part is not None and part.get("filesystem"):
            return part["filesystem"], part.get("label")
        lv = next((lv for lv in self.lvs if lv["device"] == device), None)
        if lv is not None:
            return lv["filesystem"], lv.get("label")
        return None

    def mounts(self, root):
        """``[(target, device, fstype, label)]``: ``/`` first, then by depth, then by path."""
        found = []
        for entry in self.esps() + [lv for lv in self.lvs if lv["filesystem"] == "ext4"]:
            mountpoint = entry.get("mountpoint")
            if mountpoint:
                found.append((mountpoint, entry["device"], entry["filesystem"], entry.get("label")))
        found.sort(key=lambda item: (item[0] != "/", item[0].count("/") if item[0] != "/" else 0, item[0]))
        return [(target_under(root, mountpoint), device, fstype, label) for mountpoint, device, fstype, label in found]

    def swap_volumes(self):
        return [lv for lv in self.lvs if lv["filesystem"] == "swap"]


# ---------------------------------------------------------------- tearing down


def teardown_mounts(state, scope, tools):
    """Every mount of a device in ``scope`` (the deepest first), then every swap on one."""
    steps = []
    mounts = sorted((m for m in state.mounts if m["kname"] in scope),
                    key=lambda m: (-m["mountpoint"].rstrip("/").count("/"), m["mountpoint"]))
    for mount in mounts:
        steps.append(Step([tools("umount"), mount["mountpoint"]], "unmount %s" % mount["mountpoint"],
                          hint="%s is busy: stop what uses it (fuser -vm %s) and run again; a lazy unmount is "
                               "never used" % (mount["mountpoint"], mount["mountpoint"])))
    for kname in state.swaps:
        if kname in scope:
            steps.append(Step([tools("swapoff"), state.node_path(kname)], "stop swap on %s" % kname))
    return steps


# ---------------------------------------------------------------- building


class FilesystemBuild:
    """Part of ``Builder``: the ESPs' filesystems (stage 2); the LVs' filesystems, the mounts and swap (stage 3)."""

    def esp_filesystems(self):
        for part in self.view.esps():
            self.make_filesystem(part["device"], "vfat", part["label"], None, ARRAY_STAGE)

    def volume_filesystems(self):
        # An LV's filesystem goes in the stage of the step before it: its lvcreate, or, on an LV already
        # there, whatever runs first.
        count = len(self.steps)
        for lv in self.view.lvs:
            self.make_filesystem(lv["device"], lv["filesystem"], lv["label"], lv.get("inode_ratio"), PREVIOUS_STAGE)
        if len(self.steps) > count:  # mounts and swapon by label go through udev's by-label links
            self.settle("let udev see the new filesystem labels", [], PREVIOUS_STAGE)

    def make_filesystem(self, device, fstype, label, inode_ratio, stage):
        content = self.content(device)
        if content is not None and filesystem_matches(content, (fstype, label)):
            return
        if fstype == "vfat":
            argv = [self.tools("mkfs.vfat"), "-F", "32", "-n", label, device]
        elif fstype == "swap":
            argv = [self.tools("mkswap"), "-L", label, device]
        else:
            argv = [self.tools("mkfs.ext4"), "-L", label] + (["-i", str(inode_ratio)] if inode_ratio else []) + [device]
        self.add(argv, "make a %s filesystem labelled %s on %s" % (fstype, label, device), stage,
                 precheck=probed_before(self.tools, [device], blank_or_same(fstype, label)))

    def label_is_unique(self, label, device):
        kname = self.kname(device)
        carriers = self.state.labels().get(label, set()) - ({kname} if kname else set())
        return not carriers

    def mounts(self):
        tools, state = self.tools, self.state
        for target, device, fstype, label in self.view.mounts(self.root):
            kname = self.kname(device)
            current = state.mount_at(target)
            if current is not None and kname is not None and current["kname"] == kname:
                continue
            if current is not None:
                raise ApplyError("%s is already a mount point of %s, not of %s; unmount it first"
                                 % (target, current["source"], device))
            self.add([tools("mkdir"), "-p", target], "create the mount point %s" % target, LAST_STAGE)
            source = ["-L", label] if self.label_is_unique(label, device) else [device]
            if source == [device]:
                self.notes.append("label %s is carried by another device too: %s is mounted by device, not by label"
                                  % (label, target))
            self.add([tools("mount"), "-t", fstype] + source + [target], "mount %s at %s" % (device, target),
                     LAST_STAGE)

    def swaps(self):
        for lv in self.view.swap_volumes():
            kname = self.kname(lv["device"])
            if kname is not None and self.state.swap_active(kname):
                continue
            source = ["-L", lv["label"]] if self.label_is_unique(lv["label"], lv["device"]) else [lv["device"]]
            self.add([self.tools("swapon")] + source, "enable swap on %s" % lv["device"], LAST_STAGE)


def blank_or_same(fstype, label):
    """Right before mkfs: blank → run; the planned filesystem already there → skip; else stop."""

    def decide(device, probe):
        if not probe:
            return True
        if filesystem_matches(probe, (fstype, label)):
            return False
        raise ApplyError("refusing to make a filesystem on %s: blkid finds %s there" % (device, describe_probe(probe)))

    return decide


# ---------------------------------------------------------------- guarding


class MountGuard:
    """Part of ``Guard``: the planned mount targets under the root, the mounts on a disk being wiped;
    ``mkdir``, ``mount`` and ``umount`` may name no other target."""

    def account_mounts(self, view):
        self.targets.update(mount[0] for mount in view.mounts(self.root))

    def account_wiped_mounts(self, disk):
        for kname in [disk] + self.state.descendants(disk):
            self.targets.update(m["mountpoint"] for m in self.state.mounts_of(kname))

    def check_mount_target(self, argv):
        if os.path.basename(argv[0]) in ("mkdir", "mount", "umount"):
            target = argv[-1]
            if target not in self.targets:
                self.refuse(argv, "%s is not a planned mount point under %s nor a mount being torn down"
                            % (target, self.root))


# ---------------------------------------------------------------- the layout


def filesystems_layout(state, involved, layout):
    """Fill ``layout`` with what blkid finds on the ``involved`` devices."""
    for kname in sorted(involved):
        probe = state.probe(kname)
        if probe.get("TYPE") or probe.get("AMBIVALENT"):
            layout["filesystems"][device_label(state, kname)] = describe_probe(probe)


def planned_esps_layout(view, layout):
    for part in view.esps():
        layout["filesystems"][part["device"]] = 'vfat "%s"' % part["label"]


def mounts_layout(state, involved, layout):
    """Fill ``layout`` with the mounts and swaps of the ``involved`` devices."""
    for mount in state.mounts:
        if mount["kname"] in involved:
            layout["mounts"][mount["mountpoint"]] = device_label(state, mount["kname"])
    layout["swaps"] = sorted(device_label(state, kname) for kname in state.swaps if kname in involved)


def planned_mounts_layout(view, root, layout):
    for mount in view.mounts(root):
        layout["mounts"][mount[0]] = mount[1]
    layout["swaps"] = sorted(lv["device"] for lv in view.swap_volumes())
