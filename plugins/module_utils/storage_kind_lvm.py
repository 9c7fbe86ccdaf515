# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The LVM room of the storage engine: physical volumes, volume groups and logical volumes.

Here, for the plan's ``volume_groups`` and ``logical_volumes``: how they are checked
(``VolumePlan``), how a PV, an LV and a VG are told ours or foreign (``VolumeInventory``,
``is_our_pv``), a VG name taken outside the plan, how they are torn down
(``teardown_volumes``), how they are built (``VolumeBuild``), which VGs, LVs and paths a command
may name (``VolumeGuard``), and how they are described in the layout. The filesystem on an LV
belongs to ``storage_kind_fs``.

The build steps, stage 3, and why each one is safe to re-run after a kill between any two commands:

``pvcreate`` / ``vgcreate --addtag prenixos_build_<id>`` / ``vgextend``
    LVM commits its metadata atomically; an existing PV (orphan or in the planned VG) or VG is
    kept, so a re-run only does what is missing. A VG is ours only with this build's tag
    (``storage_identity``).
``lvcreate -L <bytes>b -n NAME VG --yes``
    Only for missing LVs, with the plan's absolute size clipped at run time to the VG's real free
    space (never ``%FREE``); an existing LV of another size is left alone and reported. An
    inactive LV is activated (``lvchange -ay``).
``vgchange --addtag prenixos_finished VG``
    The last step of a build, on every planned VG: the build is finished (a tag is an atomic
    metadata update; re-adding it is a no-op, so it is only emitted when missing).

Teardown, after the mounts and swap, before the arrays: ``vgchange -an``, ``vgremove -ff -y``,
``pvremove -ff -y``.

May import storage_step, storage_state(_model) and storage_contract; no other room.
"""
from __future__ import annotations

import os

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import (
    LABEL_PATTERN,
    NAME_PATTERN,
    human_size,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_identity import FINISHED_TAG
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import (
    LVM_REPORT_ARGS,
    VGS_FIELDS,
    parse_vgs,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import (
    LAST_STAGE,
    ApplyError,
    MiB,
    Step,
    describe_probe,
    device_label,
    probed_before,
)


def pvs_on_disk(state, disk):
    return [pv for pv in state.pvs if disk in state.tops.get(state.pv_kname(pv), ())]


# ---------------------------------------------------------------- the plan


class VolumePlan:
    """Part of ``PlanView``: the planned VGs (``vgs`` by name, ``vg_of_pv`` by PV path) and LVs (``lvs``)."""

    def read_volume_groups(self):
        self.vgs = {}
        self.vg_of_pv = {}
        for vg in self.entries("volume_groups"):
            self.add_vg(vg)

    def read_logical_volumes(self):
        self.lvs = []
        for lv in self.entries("logical_volumes"):
            self.add_lv(lv)

    def add_vg(self, vg):
        name = vg.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.errors.append("volume group name %r is not a plain name" % (name,))
            return
        pvs = vg.get("pvs")
        if not isinstance(pvs, list) or not pvs:
            self.errors.append("volume group %s has no pvs" % name)
            return
        for pv in pvs:
            array = next((a for a in self.arrays.values() if a.get("device") == pv), None)
            part = self.partition_by_device.get(pv)
            if array is None and (part is None or part.get("filesystem") or pv in self.array_of_member):
                self.errors.append("volume group %s: PV %r is neither a planned array nor a planned partition"
                                   % (name, pv))
            elif pv in self.vg_of_pv:
                self.errors.append("%s is a PV of two volume groups" % pv)
            else:
                self.vg_of_pv[pv] = vg
        self.vgs[name] = vg

    def add_lv(self, lv):
        vg_name, name = lv.get("vg"), lv.get("name")
        where = "logical volume %s/%s" % (vg_name, name)
        if vg_name not in self.vgs or not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.errors.append("%s: not a named volume of a planned VG" % where)
            return
        if lv.get("device") != "/dev/%s/%s" % (vg_name, name):
            self.errors.append("%s: device %r should be /dev/%s/%s" % (where, lv.get("device"), vg_name, name))
        size = lv.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            self.errors.append("%s: size %r is not a positive number of bytes" % (where, size))
        if lv.get("filesystem") not in ("ext4", "swap"):
            self.errors.append("%s: filesystem %r is not ext4 or swap" % (where, lv.get("filesystem")))
        if not LABEL_PATTERN.match(str(lv.get("label") or "")):
            self.errors.append("%s: label %r is not a plain name of 1-16 characters" % (where, lv.get("label")))
        ratio = lv.get("inode_ratio")
        if ratio is not None and (not isinstance(ratio, int) or isinstance(ratio, bool) or ratio < 1024):
            self.errors.append("%s: inode_ratio %r is not a number of bytes (1024 or more)" % (where, ratio))
        if any(other["vg"] == vg_name and other["name"] == name for other in self.lvs):
            self.errors.append("%s is planned twice" % where)
        self.lvs.append(lv)

    def lv(self, vg_name, name):
        return next((lv for lv in self.lvs if lv["vg"] == vg_name and lv["name"] == name), None)


# ---------------------------------------------------------------- recognising


class VolumeInventory:
    """Part of ``Classifier``: an LV is ours when the plan has it; a VG on the disk must be planned, and
    hold only planned LVs."""

    def classify_volume(self, kname):
        volume = self.state.lv_of_kname(kname)
        planned = self.view.lv(volume["vg"], volume["name"]) if volume else None
        if planned is None:
            self.foreign("logical volume %s%s" % (
                "%s/%s" % (volume["vg"], volume["name"]) if volume else kname, self.usage(kname)))
        elif self.content_is_ours(kname, planned["device"]):
            self.inventory.ours.add(kname)

    def classify_volume_groups(self):
        """LVs (active or not) of VGs on this disk that the plan does not have; VGs it does not have."""
        state = self.state
        for vg_name in sorted({pv["vg_name"] for pv in state.pvs if pv["vg_name"]}):
            if self.disk not in state.vg_tops(vg_name):
                continue
            if vg_name not in self.view.vgs:
                self.foreign("volume group %s" % vg_name)
                continue
            if not self.view.identity.marks_vg(state.vg_tags(vg_name)):
                self.foreign("volume group %s of another build (tags: %s)"
                             % (vg_name, ", ".join(state.vg_tags(vg_name)) or "none"))
                continue
            for volume in sorted(state.lvs.values(), key=lambda v: v["name"]):
                if volume["vg"] == vg_name and self.view.lv(vg_name, volume["name"]) is None:
                    self.foreign("logical volume %s/%s (not in the plan)" % (vg_name, volume["name"]))


def is_our_pv(identity, state, kname, probe, vg_name):
    """The content of a planned PV: a PV of no VG yet, or of the planned VG carrying this build's tag."""
    pv = state.pv_on(kname)
    if probe.get("TYPE") != "LVM2_member" or pv is None:
        return False
    return pv["vg_name"] == "" or (pv["vg_name"] == vg_name
                                   and identity.marks_vg(state.vg_tags(vg_name)))


def build_has_volume_groups(view, state):
    """This build made at least one of its volume groups (so every one of its arrays was made before)."""
    return any(view.identity.marks_vg(state.vg_tags(name)) for name in view.vgs)


def build_finished(view, state):
    """A planned VG of this build carries the finished tag: the build ran to its last step."""
    return any(view.identity.marks_vg(tags) and FINISHED_TAG in tags
               for tags in map(state.vg_tags, view.vgs))


def pv_description(state, kname):
    pv = state.pv_on(kname)
    if pv is None:
        return None
    return "LVM physical volume%s" % (" of VG %s" % pv["vg_name"] if pv["vg_name"] else "")


def vg_name_conflicts(view, state, allowed):
    """Planned VG names a VG reaching beyond the ``allowed`` disks already has."""
    return ["a volume group named %s already exists on %s, outside the plan; rename it (vgrename) first"
            % (name, ", ".join(sorted(state.vg_tops(name) - allowed)) or "missing PVs")
            for name in view.vgs if name in state.vgs and not state.vg_tops(name) <= allowed]


# ---------------------------------------------------------------- tearing down


def teardown_volumes(state, scope, tools):
    """Every VG with a PV in ``scope`` deactivated and removed (a partial one only deactivated), then its PVs."""
    steps = []
    pvs = [pv for pv in state.pvs if state.pv_kname(pv) in scope]
    for vg_name in sorted({pv["vg_name"] for pv in pvs if pv["vg_name"]}):
        steps.append(Step([tools("vgchange"), "-an", vg_name], "deactivate VG %s" % vg_name))
        if not state.vgs.get(vg_name, {}).get("partial"):
            steps.append(Step([tools("vgremove"), "-ff", "-y", vg_name], "remove VG %s" % vg_name))
    for pv in pvs:
        path = state.node_path(state.pv_kname(pv))
        steps.append(Step([tools("pvremove"), "-ff", "-y", path], "remove PV %s" % path))
    return steps


# ---------------------------------------------------------------- building


class VolumeBuild:
    """Part of ``Builder``: the PVs, VGs and LVs the plan has and the state lacks (stage 3)."""

    def volume_groups(self):
        tools, state = self.tools, self.state
        for vg in self.view.vgs.values():
            paths = [self.array_paths.get(pv[len("/dev/md/"):], pv) if pv.startswith("/dev/md/") else pv
                     for pv in vg["pvs"]]
            for path in paths:
                kname = self.kname(path)
                if kname is not None and state.pv_on(kname) is not None:
                    continue
                self.add([tools("pvcreate"), path], "make %s an LVM physical volume" % path, LAST_STAGE,
                         precheck=probed_before(tools, [path], blank_or_pv))
                self.fresh.add(path)
            if vg["name"] not in state.vgs:
                self.add([tools("vgcreate"), "--addtag", self.view.identity.tag, vg["name"]] + paths,
                         "create VG %s" % vg["name"], LAST_STAGE)
                self.fresh.add("vg:" + vg["name"])
                continue
            for path in paths:
                kname = self.kname(path)
                pv = state.pv_on(kname) if kname else None
                if path in self.fresh or (pv is not None and pv["vg_name"] == ""):
                    self.add([tools("vgextend"), vg["name"], path], "add %s to VG %s" % (path, vg["name"]),
                             LAST_STAGE)

    def logical_volumes(self):
        tools, state = self.tools, self.state
        for lv in self.view.lvs:
            vg_fresh = "vg:" + lv["vg"] in self.fresh
            current = None if vg_fresh else state.lv(lv["vg"], lv["name"])
            if current is None:
                argv = [tools("lvcreate"), "-L", "%db" % lv["size"], "-n", lv["name"], lv["vg"], "--yes"]
                self.add(argv, "create LV %s/%s" % (lv["vg"], lv["name"]), LAST_STAGE,
                         resolve=self.clipped_to_free_space(argv, lv), wait_for=[lv["device"]])
                self.fresh.add(lv["device"])
                continue
            if current["size"] != lv["size"]:
                self.notes.append("LV %s/%s is %s, the plan says %s: left alone (never resized)"
                                  % (lv["vg"], lv["name"], human_size(current["size"]), human_size(lv["size"])))
            if not current["active"]:
                self.add([tools("lvchange"), "-ay", "%s/%s" % (lv["vg"], lv["name"])],
                         "activate LV %s/%s" % (lv["vg"], lv["name"]), LAST_STAGE, wait_for=[lv["device"]])
                self.unknown.add(lv["device"])

    def mark_finished(self):
        """Last of all: every planned VG says the build is finished."""
        for vg in self.view.vgs.values():
            fresh = "vg:" + vg["name"] in self.fresh
            if fresh or FINISHED_TAG not in self.state.vg_tags(vg["name"]):
                self.add([self.tools("vgchange"), "--addtag", FINISHED_TAG, vg["name"]],
                         "mark the build finished on VG %s" % vg["name"], LAST_STAGE)

    def clipped_to_free_space(self, argv, lv):
        """At run time: the planned size, or the VG's free space (whole extents) when that is smaller."""
        tools, notes = self.tools, self.notes

        def resolve(runner):
            command = [tools("vgs")] + list(LVM_REPORT_ARGS) + [VGS_FIELDS, lv["vg"]]
            vg = parse_vgs(runner.run(command)[1]).get(lv["vg"])
            if vg is None:
                raise ApplyError("VG %s is gone before LV %s could be created in it" % (lv["vg"], lv["name"]))
            extent = vg["extent_size"] or 4 * MiB
            free = vg["free"] - vg["free"] % extent
            if lv["size"] <= free:
                return argv
            if free <= 0:
                raise ApplyError("VG %s has no free space left for LV %s (%s planned)"
                                 % (lv["vg"], lv["name"], human_size(lv["size"])))
            notes.append("LV %s/%s clipped to the VG's free space: %s instead of %s"
                         % (lv["vg"], lv["name"], human_size(free), human_size(lv["size"])))
            return [arg if arg != "%db" % lv["size"] else "%db" % free for arg in argv]

        return resolve


def blank_or_pv(path, probe):
    """Right before pvcreate: blank → run; a PV already (a killed run made it) → skip; else stop."""
    if probe.get("TYPE") == "LVM2_member":
        return False
    if probe:
        raise ApplyError("refusing to make %s a physical volume: blkid finds %s there" % (path, describe_probe(probe)))
    return True


# ---------------------------------------------------------------- guarding


class VolumeGuard:
    """Part of ``Guard``: the planned VGs and LV paths, the PVs and VGs on a disk being wiped; and the
    VG or LV names an LVM command gives outside a /dev path."""

    VG_FIRST = ("vgcreate", "vgextend", "vgremove", "vgchange")

    def account_volumes(self, view):
        self.paths.update(lv["device"] for lv in view.lvs)
        self.vg_names.update(view.vgs)
        self.lv_names.update("%s/%s" % (lv["vg"], lv["name"]) for lv in view.lvs)

    def account_wiped_volumes(self, disk):
        state = self.state
        for pv in pvs_on_disk(state, disk):
            self.paths.update({pv["pv_name"], state.node_path(state.pv_kname(pv))})
            if pv["vg_name"]:
                self.vg_names.add(pv["vg_name"])

    def check_volume_names(self, argv):
        command = os.path.basename(argv[0])
        if command in self.VG_FIRST:
            names = [arg for index, arg in enumerate(argv[1:], start=1)
                     if not arg.startswith("-") and not arg.startswith("/dev/") and argv[index - 1] != "--addtag"]
            for name in names:
                if name not in self.vg_names:
                    self.refuse(argv, "volume group %s is not in the plan nor on a disk being wiped" % name)
        if command == "lvcreate":
            positional = [arg for index, arg in enumerate(argv[1:], start=1)
                          if not arg.startswith("-") and argv[index - 1] not in ("-L", "-n")]
            for name in positional:
                if name not in self.vg_names:
                    self.refuse(argv, "volume group %s is not in the plan" % name)
        if command == "lvchange":
            for arg in argv[1:]:
                if not arg.startswith("-") and arg not in self.lv_names:
                    self.refuse(argv, "logical volume %s is not in the plan" % arg)


# ---------------------------------------------------------------- the layout


def volumes_layout(state, involved, layout):
    """Fill ``layout`` with the VGs that have a PV among the ``involved`` devices, and their LVs."""
    vg_names = {pv["vg_name"] for pv in state.pvs if pv["vg_name"] and state.pv_kname(pv) in involved}
    for name in sorted(vg_names):
        vg = state.vgs.get(name, {})
        pvs = " ".join(device_label(state, state.pv_kname(pv)) for pv in state.vg_pvs(name))
        layout["volume_groups"][name] = "%s, %s, %s free" % (
            pvs, human_size(vg.get("size") or 0), human_size(vg.get("free") or 0))
    for key, volume in sorted(state.lvs.items()):
        if volume["vg"] in vg_names:
            layout["logical_volumes"][key] = human_size(volume["size"]) + ("" if volume["active"] else ", inactive")


def planned_volumes_layout(view, before, layout):
    """Fill ``layout`` with the planned VGs and LVs and what is on their PVs and LVs (sizes of existing ones kept)."""
    for vg in view.vgs.values():
        for pv in vg["pvs"]:
            layout["filesystems"][pv] = "LVM2_member"
        estimate = "%s, about %s" % (" ".join(vg["pvs"]), human_size(vg.get("size") or 0))
        layout["volume_groups"][vg["name"]] = before["volume_groups"].get(vg["name"], estimate)
    for lv in view.lvs:
        layout["filesystems"][lv["device"]] = '%s "%s"' % (lv["filesystem"], lv["label"])
        key = "%s/%s" % (lv["vg"], lv["name"])
        layout["logical_volumes"][key] = before["logical_volumes"].get(key, human_size(lv["size"])).replace(
            ", inactive", "")
