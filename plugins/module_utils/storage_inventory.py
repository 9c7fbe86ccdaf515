# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory room of the storage engine: the plan checked, the planned disks' content sorted into
ours and foreign, the disks a wipe must take, and their teardown.

``PlanView`` and ``Classifier`` are put together here from the kinds' parts (``PartitionPlan``,
``ArrayPlan``... from the ``storage_kind_*`` rooms); what is not one kind's business stays here:
the order of the plan's sections, the dispatch from a device's type to its kind, the disks'
identity (``check_disks``), the stacks a disk shares (``stack_reach``, ``wipe_closure``), and the
order of the teardown.

Teardown (``wipe: true``), leaf to root: the mounts and swap, LVM, the arrays, the partition
tables and the disks' edges (each kind's ``teardown_*``), then a settle. A killed teardown leaves
less foreign content than before; the next run (with ``wipe``) tears down the rest.

Before any of it runs, ``check_teardown`` looks for what no kind room can remove: a device of a type
no room knows (dm-crypt, multipath, bcache...) stacked on a disk to wipe, a holder only sysfs shows,
a loop device on one of its devices. Any of them stops the run, naming it and what to do: the
teardown would otherwise stop halfway, at the first ``wipefs`` that finds the device busy.

May import storage_step, storage_state(_model), storage_contract, block_devices and the storage_kind_* rooms;
not storage_apply.
"""
from __future__ import annotations

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import MD_TYPES
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import READABLE_PLAN_VERSIONS
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_identity import BuildIdentity
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_fs import (
    FilesystemPlan,
    filesystem_matches,
    teardown_mounts,
    usage,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_lvm import (
    VolumeInventory,
    VolumePlan,
    build_has_volume_groups,
    is_our_pv,
    pv_description,
    pvs_on_disk,
    teardown_volumes,
    vg_name_conflicts,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_md import (
    ArrayInventory,
    ArrayPlan,
    array_name_conflicts,
    arrays_in,
    arrays_not_to_create_again,
    arrays_reaching,
    holds_our_superblock,
    superblock_description,
    teardown_arrays,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_partition import (
    PartitionInventory,
    PartitionPlan,
    describe_edges,
    teardown_tables,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import (
    ApplyError,
    Step,
    describe_probe,
    settle_argv,
)

# ---------------------------------------------------------------- the plan


class PlanView(PartitionPlan, ArrayPlan, VolumePlan, FilesystemPlan):
    """The plan, checked and indexed. Every device path a step may name is derived here.

    A plan that does not hold together (a partition device that is not on its disk, an array
    member that is not a planned partition, a mountpoint with ``..``) is refused before any read.
    Each section is read by its kind, root to leaf, so that a kind can check what it sits on.
    """

    def __init__(self, plan, refuse=True):
        """``refuse=False`` keeps what does not hold together in ``errors`` instead (a review lists it all)."""
        self.errors = []
        if not isinstance(plan, dict):
            raise ApplyError("plan must be the dict storage_plan returns, got %s" % type(plan).__name__)
        if plan.get("version") not in READABLE_PLAN_VERSIONS:
            raise ApplyError("plan version %r is not supported (this module reads versions %s)"
                             % (plan.get("version"), " and ".join(map(str, READABLE_PLAN_VERSIONS))))
        self.plan = plan
        self.identity = BuildIdentity(plan)
        self.read_disks()
        self.read_partitions()
        self.read_arrays()
        self.read_volume_groups()
        self.read_logical_volumes()
        self.check_mountpoints()
        if self.errors and refuse:
            raise ApplyError("the plan is not consistent: " + "; ".join(self.errors))

    def entries(self, key):
        value = self.plan.get(key, [])
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            self.errors.append("%s must be a list of dicts" % key)
            return []
        return value


# ---------------------------------------------------------------- the disks and what is on them


def check_disks(view, state):
    """Refuse planned disks that are the boot disk, missing, or not the disk the plan saw."""
    problems = []
    for name, disk in view.disks.items():
        if name in state.boot_disks:
            where = ", ".join(sorted(m["mountpoint"] for m in state.mounts
                                     if m["kname"] and name in state.tops.get(m["kname"], ())))
            problems.append("%s is in the plan, but the running system lives on it%s; it is never touched"
                            % (name, " (mounted at %s)" % where if where else ""))
            continue
        if not state.present(name):
            problems.append("%s is in the plan but not present" % name)
            continue
        path = disk.get("path") or ""
        if path.startswith("/dev/disk/by-id/"):
            now = state.kname_of(path)
            if now != name:
                problems.append("%s: the plan knew it as %s, which now points at %s; the disks changed since planning"
                                % (name, path, now or "nothing"))
        size = state.node_size(name)
        if isinstance(disk.get("size"), int) and size is not None and size != disk["size"]:
            problems.append("%s: planned for %d bytes, now %d bytes; the disks changed since planning"
                            % (name, disk["size"], size))
    if problems:
        raise ApplyError("refusing to apply the plan: " + "; ".join(problems), refused=problems)


class Inventory:
    """What is on the planned disks: ``foreign`` {disk: [what]}, ``conflicts`` [why], ``ours`` knames."""

    def __init__(self):
        self.foreign = {}
        self.conflicts = []
        self.ours = set()

    def add(self, disk, what):
        found = self.foreign.setdefault(disk, [])
        if what not in found:
            found.append(what)


def take_inventory(view, state, root):
    """Sort everything on the planned disks into ours and foreign (see storage_apply's docstring)."""
    inventory = Inventory()
    for disk in view.disks:
        Classifier(view, state, root, disk, inventory).run()
    for disk, whys in arrays_not_to_create_again(view, state, build_has_volume_groups(view, state)).items():
        for why in whys:
            inventory.add(disk, why)
    find_conflicts(view, state, inventory)
    return inventory


# The lsblk node types a kind room classifies and tears down, and the room (``classify_<room>``).
ROOM_OF_TYPE = dict({"part": "partition", "lvm": "volume"}, **{md_type: "array" for md_type in MD_TYPES})


class Classifier(PartitionInventory, ArrayInventory, VolumeInventory):
    """Classifies one planned disk and everything stacked on it, each device by its kind."""

    def __init__(self, view, state, root, disk, inventory):
        self.view, self.state, self.root, self.disk, self.inventory = view, state, root, disk, inventory
        self.by_type = {kind: getattr(self, "classify_" + room) for kind, room in ROOM_OF_TYPE.items()}

    def foreign(self, what):
        self.inventory.add(self.disk, what)

    def run(self):
        self.classify_disk()
        for kname in self.state.descendants(self.disk):
            kind = self.state.node_type(kname)
            if kind in self.by_type:
                self.by_type[kind](kname)
        for device, holder in holders_in_the_way(self.state, [self.disk]):
            self.foreign("%s%s" % (held_by(self.state, device, holder), self.usage(holder)))
        self.classify_volume_groups()

    def content_is_ours(self, kname, planned_device):
        """True when what blkid sees on ``kname`` is what the plan puts on ``planned_device`` (or nothing)."""
        state, view = self.state, self.view
        probe = state.probe(kname)
        if not probe:
            return True
        expected = view.filesystem_for(planned_device)
        if expected is not None:
            ours = filesystem_matches(probe, expected)
        elif planned_device in view.array_of_member:
            ours = holds_our_superblock(view.identity, state, kname, probe, view.array_of_member[planned_device])
        elif planned_device in view.vg_of_pv:
            ours = is_our_pv(view.identity, state, kname, probe, view.vg_of_pv[planned_device]["name"])
        else:
            ours = False
        if not ours:
            self.foreign_content(kname)
        return ours

    def foreign_content(self, kname):
        """Report what is on a foreign (or wrongly filled) device; an empty one adds nothing to its entry."""
        probe = self.state.probe(kname)
        what = describe_probe(probe) if probe else None
        what = superblock_description(self.state, kname) or what
        what = pv_description(self.state, kname) or what
        uses = self.usage(kname)
        if what or uses:
            self.foreign("%s: %s%s" % (kname, what or "in use", uses))

    def usage(self, kname):
        return usage(self.state, kname)


def find_conflicts(view, state, inventory):
    """Names the plan needs that something outside the planned disks already has."""
    allowed = set(view.disks) - state.boot_disks
    inventory.conflicts += array_name_conflicts(view, state, allowed)
    inventory.conflicts += vg_name_conflicts(view, state, allowed)


def foreign_message(inventory):
    lines = ["Refusing to change disks that hold data this plan did not make (nothing was changed; "
             "set wipe: true to destroy it):"]
    for disk in sorted(inventory.foreign):
        lines.append("  - %s: %s" % (disk, "; ".join(inventory.foreign[disk])))
    return "\n".join(lines)


# ---------------------------------------------------------------- what a wipe takes


def stack_reach(state, kname):
    """Top-level disks a device stack involves (lsblk tree, md members, VG PVs)."""
    reach = set(state.tops.get(kname, ()))
    if state.node_type(kname) in MD_TYPES or kname in state.mdstat:
        reach |= state.md_tops(kname)
    volume = state.lv_of_kname(kname)
    if volume is not None:
        reach |= state.vg_tops(volume["vg"])
    pv = state.pv_on(kname)
    if pv is not None and pv["vg_name"]:
        reach |= state.vg_tops(pv["vg_name"])
    return reach


def wipe_closure(view, state, seed):
    """``(disks to wipe, conflicts)``: the seed plus the planned disks its stacks share.

    A stack that reaches a disk outside the plan (or the boot disk) is a conflict: it cannot be
    torn down without touching that disk.
    """
    allowed = set(view.disks) - state.boot_disks
    disks, conflicts = set(seed), []
    pending = sorted(disks)
    while pending:
        disk = pending.pop(0)
        involved = [(kname, stack_reach(state, kname)) for kname in state.descendants(disk)]
        involved += [("/dev/" + md, state.md_tops(md)) for md in arrays_reaching(state, disk) if md not in state.nodes]
        vgs = sorted({pv["vg_name"] for pv in state.pvs if pv["vg_name"]})
        involved += [("volume group " + vg, state.vg_tops(vg)) for vg in vgs if disk in state.vg_tops(vg)]
        for what, reach in involved:
            outside = reach - allowed
            if outside:
                message = ("%s on %s also uses %s, which %s; it cannot be torn down without touching %s"
                           % (what, disk, ", ".join(sorted(outside)),
                              "is the boot disk" if outside & state.boot_disks else "is not in the plan",
                              "it" if len(outside) == 1 else "them"))
                if message not in conflicts:
                    conflicts.append(message)
            for other in sorted((reach & allowed) - disks):
                disks.add(other)
                pending.append(other)
    return sorted(disks), conflicts


# How a holder no kind room removes is named, and what the operator does about it ({name}: its dm name).
HOLDER_KINDS = {
    "crypt": ("dm-crypt device", "close it (cryptsetup close {name}) or remove it"),
    "mpath": ("multipath device", "flush it (multipath -f {name})"),
    "dm": ("device-mapper device", "remove it (dmsetup remove {name})"),
    "loop": ("loop device", "detach it (losetup -d /dev/{kname})"),
    "bcache": ("bcache device", "stop it (echo 1 > /sys/block/{kname}/bcache/stop)"),
}


def holders_in_the_way(state, disks):
    """``[(device, holder)]``: what holds a device on ``disks`` that no kind room tears down, each holder once.

    A device stacked there of a type no room knows, a holder only sysfs shows, a loop device on one
    of the devices.
    """
    found, seen = [], set()
    for disk in disks:
        for kname in [disk] + state.descendants(disk):
            unknown = [child for child in state.children.get(kname, []) if state.node_type(child) not in ROOM_OF_TYPE]
            for holder in unknown + state.holders.get(kname, []):
                if holder not in seen:
                    seen.add(holder)
                    found.append((kname, holder))
    return found


def holder_kind(state, kname):
    """The HOLDER_KINDS key of a holder: its lsblk type, else what its kernel name says (bcache0, dm-3, loop1)."""
    for prefix, kind in (("bcache", "bcache"), ("dm-", "dm"), ("loop", "loop")):
        if kname.startswith(prefix) and (kind == "bcache" or state.node_type(kname) is None):
            return kind
    return state.node_type(kname)


def held_by(state, device, holder):
    """``sdc2 is held by dm-crypt device luks-0a1b (crypt)``."""
    listed = state.node_type(holder)
    kind = holder_kind(state, holder)
    what = HOLDER_KINDS[kind][0] if kind in HOLDER_KINDS else "%s device" % (kind or "unknown")
    name = (state.nodes.get(holder) or {}).get("name") or holder
    return "%s is held by %s %s (%s)" % (device, what, name, listed or "not listed by lsblk")


def what_to_do(state, holder):
    kind = holder_kind(state, holder)
    if kind not in HOLDER_KINDS:
        return "remove it"
    name = (state.nodes.get(holder) or {}).get("name") if holder in state.nodes else "/dev/" + holder
    return HOLDER_KINDS[kind][1].format(name=name or holder, kname=holder)


def check_teardown(state, disks):
    """Refuse, before any command, a teardown of ``disks`` that a holder no kind room removes would stop halfway."""
    in_the_way = holders_in_the_way(state, disks)
    if not in_the_way:
        return
    held = [held_by(state, device, holder) for device, holder in in_the_way]
    advice = ["%s; %s, then run again" % (why, what_to_do(state, holder))
              for why, (_device, holder) in zip(held, in_the_way, strict=True)]
    raise ApplyError("refusing to wipe %s: %s; nothing was changed" % (", ".join(disks), "; ".join(advice)),
                     held=held)


def teardown_steps(state, disks, tools, settle_timeout):
    """Leaf-to-root teardown of everything on ``disks``: each kind tears down its own, the leaves first."""
    scope = set(disks)
    for disk in disks:
        scope.update(state.descendants(disk))
    arrays = arrays_in(state, scope)
    scope.update(arrays)
    steps = teardown_mounts(state, scope, tools)
    steps += teardown_volumes(state, scope, tools)
    steps += teardown_arrays(state, disks, arrays, tools)
    steps += teardown_tables(state, disks, tools, settle_timeout)
    steps.append(Step(settle_argv(tools, settle_timeout), "wait for udev"))
    return steps


def leftovers(state, disks):
    """What is still reachable from ``disks`` after a teardown (empty when they are blank)."""
    found = []
    for disk in disks:
        probe = state.probe(disk)
        if probe:
            found.append("%s: %s" % (disk, describe_probe(probe)))
        unknown = describe_edges(state.edges.get(disk))
        if unknown:
            found.append("%s: %s" % (disk, unknown))
        for kname in [disk] + state.descendants(disk):
            for holder in state.holders.get(kname, []):
                found.append("%s: %s" % (disk, held_by(state, kname, holder)))
        if state.tables.get(disk):
            found.append("%s: partition table with %d partition(s)" % (disk, len(state.tables[disk])))
        for kname in state.descendants(disk):
            found.append("%s: %s %s is still there" % (disk, state.node_type(kname) or "device", kname))
        for pv in pvs_on_disk(state, disk):
            found.append("%s: LVM physical volume %s" % (disk, pv["pv_name"]))
        for md in arrays_reaching(state, disk):
            found.append("%s: array /dev/%s" % (disk, md))
    return found
