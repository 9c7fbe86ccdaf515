# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The md room of the storage engine: RAID arrays over planned partitions.

Here, for the plan's ``arrays``: how they are checked (``ArrayPlan``), how an array and a member
are told ours or foreign (``ArrayInventory``, ``member_is_ours``, ``holds_our_superblock``), a
name taken outside the plan, how arrays are torn down (``teardown_arrays``), how they are built
(``ArrayBuild``), which paths a command may name (``ArrayGuard``), how they are described in the
layout, and which run degraded.

``mdadm`` (stage 2), and why it is safe to re-run after a kill between any two commands
    A running array of the plan's name is kept (planned members it lacks are added when blank).
    Inactive arrays holding our members (what a kill inside ``mdadm --create`` or a reboot
    leaves) are stopped; members carrying our superblock (the plan's name and this build's UUID,
    ``storage_identity``) are assembled when enough of them exist to start it; otherwise (a
    half-created array) our superblocks are zeroed and the array is created again: they are ours
    and carry nothing yet. That happens only while this build has no volume group yet (every array
    is created before the first one); later, such an array is damage and foreign
    (``arrays_not_to_create_again``). Right before ``--create`` every member is probed again and
    must be blank. After it: settle, wait for ``/dev/md/NAME``.
    ``--homehost=any`` stores the name as ``any:NAME``, which every host treats as its own: the
    array is ``/dev/md/NAME`` on the live system and on the installed system, whatever their host
    names. ``--assume-clean`` is deliberately not used: on RAID5/6 it leaves parity that does not
    match the data, so a later disk failure can rebuild garbage for stripes updated by
    read-modify-write, and every scrub reports mismatches; on RAID1 it would only save background
    I/O. The array is usable at once; its initial sync is held (``--action=frozen``) until the
    build is done, then runs in the background (``--action=idle``, the last step of stage 3; see
    ``ArrayBuild.release_syncs``), so it does not compete with the build for the disks and the CPU.

Teardown, after LVM and before the partitions: ``wipefs -a`` on each running array, ``mdadm
--stop``, ``mdadm --zero-superblock`` on every member.

May import storage_step, storage_state(_model) and storage_contract; no other room.
"""
from __future__ import annotations

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import NAME_PATTERN, RAID_LEVELS
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import (
    ARRAY_STAGE,
    LAST_STAGE,
    ApplyError,
    Step,
    describe_probe,
    probed_before,
)


def syncs(level):
    """Whether an md array of ``level`` has a sync to hold (raid0 and linear have no redundancy to sync)."""
    return str(level).replace("raid", "") not in ("0", "linear")


def can_start(level, total, present):
    """Enough members with one UUID to start the array (degraded if need be)."""
    minimum = {"raid0": total, "raid1": 1, "raid4": total - 1, "raid5": total - 1, "raid6": total - 2}
    return present >= minimum.get(level, total)


def sync_action(tools, action, array_path):
    """``frozen`` holds an array's sync, ``idle`` lets it run (the kernel forgets ``frozen`` at reboot)."""
    return [tools("mdadm"), "--misc", "--action=" + action, array_path]


def held_syncs(commands, tools):
    """The arrays ``commands`` (argvs that ran) held with ``--action=frozen``."""
    return [argv[-1] for argv in commands if argv == sync_action(tools, "frozen", argv[-1])]


def arrays_reaching(state, disk):
    """Arrays the kernel lists (``/proc/mdstat``) with a member on ``disk``."""
    return [md for md in state.mdstat if disk in state.md_tops(md)]


# ---------------------------------------------------------------- the plan


class ArrayPlan:
    """Part of ``PlanView``: the planned arrays (``arrays`` by name, ``array_of_member`` by member path)."""

    def read_arrays(self):
        self.arrays = {}
        self.array_of_member = {}
        for array in self.entries("arrays"):
            self.add_array(array)

    def add_array(self, array):
        name = array.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.errors.append("array name %r is not a plain name" % (name,))
            return
        if array.get("device") != "/dev/md/" + name:
            self.errors.append("array %s: device %r should be /dev/md/%s" % (name, array.get("device"), name))
        if array.get("level") not in RAID_LEVELS:
            self.errors.append("array %s: level %r is not one of %s"
                               % (name, array.get("level"), ", ".join(RAID_LEVELS)))
        members = array.get("devices")
        if not isinstance(members, list) or not members:
            self.errors.append("array %s has no devices" % name)
            return
        for member in members:
            part = self.partition_by_device.get(member)
            if part is None or part.get("filesystem"):
                self.errors.append("array %s: member %r is not a planned partition without a filesystem"
                                   % (name, member))
            elif member in self.array_of_member:
                self.errors.append("%s is a member of two arrays" % member)
            else:
                self.array_of_member[member] = array
        self.arrays[name] = array

    def array_named(self, name):
        return self.arrays.get(name)


# ---------------------------------------------------------------- recognising


class ArrayInventory:
    """Part of ``Classifier``: an array on a planned disk is ours when the plan has its name and level,
    it carries this build's UUID, and every member is a planned member of it holding our superblock
    or nothing."""

    def classify_array(self, kname):
        state = self.state
        name = state.md_name(kname)
        planned = self.view.array_named(name) if name else None
        members = ["/dev/" + member for member in state.md_members(kname)]
        level = state.md_level(kname)
        ours = (
            planned is not None
            and all(member in planned["devices"] for member in members)
            and all(state.kname_of(member) in self.inventory.ours or member_is_ours(self.view, state, member)
                    for member in members)
            and (level is None or level == planned["level"])
            and self.view.identity.marks_array(state.md_uuid(kname), name)
        )
        if not ours:
            self.foreign("array /dev/%s (%s%s, %s)%s" % (
                kname, "name %s, " % name if name else "", level or "inactive",
                " ".join(m[len("/dev/"):] for m in members) or "no members", self.usage(kname)))
            return
        if self.content_is_ours(kname, planned["device"]):
            self.inventory.ours.add(kname)


def member_is_ours(view, state, member):
    """A member of an array is ours when it is a planned partition holding our superblock or nothing."""
    kname = state.kname_of(member)
    array = view.array_of_member.get(member)
    if kname is None or array is None:
        return False
    return not state.probe(kname) or is_our_superblock(view.identity, state.superblocks.get(kname), array)


def is_our_superblock(identity, superblock, array):
    """A superblock this build wrote for ``array``: its name and this build's UUID for it."""
    return bool(superblock and superblock["short_name"] == array["name"]
                and identity.marks_array(superblock["uuid"], array["name"]))


def holds_our_superblock(identity, state, kname, probe, array):
    """The content of a planned member: our array's superblock (its name, level and UUID)."""
    superblock = state.superblocks.get(kname)
    return bool(probe.get("TYPE") == "linux_raid_member" and is_our_superblock(identity, superblock, array)
                and superblock["level"] == array["level"])


def our_superblocks(view, state, array, kname_of):
    """``{member path: superblock}`` of the planned members carrying this build's superblock for ``array``."""
    ours = {}
    for member in array["devices"]:
        kname = kname_of(member)
        superblock = state.superblocks.get(kname) if kname else None
        if is_our_superblock(view.identity, superblock, array):
            ours[member] = superblock
    return ours


def startable(array, ours):
    """Enough members carry this build's superblock (``ours``) to start ``array``, degraded if need be."""
    total = len(array["devices"])
    return bool(ours) and can_start(array["level"], total, len(ours)) and all(
        superblock["raid_devices"] in (None, total) for superblock in ours.values())


def arrays_not_to_create_again(view, state, vgs_built):
    """``{disk: [why]}`` for planned arrays that are half-created while the build got past its arrays.

    A build creates every array before its first volume group (``vgs_built``: this build has one), so
    an array some members of which carry our superblock but too few to start it is then damage, not
    a killed ``mdadm --create``: it is not zeroed and created again without ``wipe``.
    """
    found = {}
    if not vgs_built:
        return found
    running = {state.md_name(kname) for kname in state.md_arrays() if state.md_active(kname)}
    for array in view.arrays.values():
        ours = our_superblocks(view, state, array, state.kname_of)
        if array["name"] in running or not ours or startable(array, ours):
            continue
        why = ("array %s: %d of its %d members carry this build's superblock, too few to start it, and the build "
               "got past its arrays; it is not created again" % (array["name"], len(ours), len(array["devices"])))
        for member in array["devices"]:
            disk = view.partition_by_device[member]["disk"]
            found.setdefault(disk, [])
            if why not in found[disk]:
                found[disk].append(why)
    return found


def superblock_description(state, kname):
    superblock = state.superblocks.get(kname)
    if not superblock:
        return None
    return "RAID member of %s (%s)" % (superblock.get("name") or superblock["uuid"], superblock.get("level"))


def array_name_conflicts(view, state, allowed):
    """Planned array names an array outside the ``allowed`` disks already has."""
    conflicts = []
    for name in view.arrays:
        for kname in state.md_arrays():
            if state.md_name(kname) == name and not state.md_tops(kname) <= allowed:
                conflicts.append(
                    "an array named %s (/dev/%s) already exists on %s, outside the plan; stop or rename it first"
                    % (name, kname, ", ".join(sorted(state.md_tops(kname) - allowed))))
    return conflicts


# ---------------------------------------------------------------- tearing down


def arrays_in(state, scope):
    """Arrays in ``scope`` or with a member in it."""
    return [md for md in state.md_arrays() if md in scope or set(state.md_members(md)) & scope]


def ordered_scope(state, disks):
    """``disks`` and everything stacked on them, parents before children."""
    order = []
    for disk in disks:
        for name in [disk] + state.descendants(disk):
            if name not in order:
                order.append(name)
    return order


def teardown_arrays(state, disks, arrays, tools):
    """``arrays`` stopped (the topmost first, a running one wiped first), then every superblock on ``disks`` zeroed."""
    steps = []
    order = ordered_scope(state, disks)
    depth = {name: index for index, name in enumerate(order)}
    for md in sorted(arrays, key=lambda name: -depth.get(name, 0)):
        if state.md_active(md):
            steps.append(Step([tools("wipefs"), "-a", "/dev/" + md], "wipe signatures on /dev/%s" % md))
        steps.append(Step([tools("mdadm"), "--stop", "/dev/" + md], "stop array /dev/%s" % md))
    for kname in order:
        if kname in state.superblocks or state.probe(kname).get("TYPE") == "linux_raid_member":
            steps.append(Step([tools("mdadm"), "--zero-superblock", state.node_path(kname)],
                              "zero the RAID superblock on %s" % kname))
    return steps


# ---------------------------------------------------------------- building


class ArrayBuild:
    """Part of ``Builder``: every planned array kept, assembled or created (stage 2); ``release_syncs`` last.

    Records in ``array_paths`` the path each planned array is reached by (a running array may not
    have its ``/dev/md/NAME`` link), for the PVs on it.
    """

    def arrays(self):
        for array in self.view.arrays.values():
            self.array(array)

    def running_array(self, array):
        state, identity = self.state, self.view.identity
        for kname in state.md_arrays():
            if (state.md_active(kname) and state.md_name(kname) == array["name"]
                    and identity.marks_array(state.md_uuid(kname), array["name"])):
                return kname
        return None

    def array(self, array):
        tools, state, name = self.tools, self.state, array["name"]
        members = array["devices"]
        running = self.running_array(array)
        if running is not None:
            path = array["device"] if state.kname_of(array["device"]) == running else "/dev/" + running
            self.array_paths[name] = path
            present = {"/dev/" + member for member in state.md_members(running)}
            for member in members:
                if member not in present:
                    self.add_member(array, path, member)
            return
        self.array_paths[name] = array["device"]
        member_knames = {self.kname(m) for m in members} - {None}
        for kname in state.md_arrays():
            if not state.md_active(kname) and set(state.md_members(kname)) & member_knames:
                self.add([tools("mdadm"), "--stop", "/dev/" + kname], "stop the inactive array /dev/%s" % kname,
                         ARRAY_STAGE)
        ours = our_superblocks(self.view, state, array, self.kname)
        if startable(array, ours):
            argv = [tools("mdadm"), "--assemble", array["device"]]
            if len(ours) < len(members):
                argv.append("--run")
            self.add(argv + sorted(ours), "assemble array %s from its members" % name, ARRAY_STAGE)
            self.settle("wait for %s" % array["device"], [array["device"]], ARRAY_STAGE)
            for member in members:
                if member not in ours:
                    self.add_member(array, array["device"], member, zero=False)
            return
        for member in sorted(ours):
            self.add([tools("mdadm"), "--zero-superblock", member],
                     "zero our superblock on %s (array %s was half-created)" % (member, name), ARRAY_STAGE)
        self.add([tools("mdadm"), "--create", array["device"], "--name=" + name, "--homehost=any",
                  "--uuid=" + self.view.identity.array_uuid(name),
                  "--level=" + array["level"], "--raid-devices=%d" % len(members),
                  "--metadata=" + str(array.get("metadata") or "1.2"), "--run"] + list(members),
                 "create array %s" % name, ARRAY_STAGE, precheck=probed_before(tools, members, blank_member))
        self.fresh.add(array["device"])
        self.settle("wait for %s" % array["device"], [array["device"]], ARRAY_STAGE)
        if syncs(array["level"]):
            self.add(sync_action(tools, "frozen", array["device"]),
                     "hold the initial sync of array %s while the rest is built" % name, ARRAY_STAGE)

    def add_member(self, array, array_path, member, zero=None):
        if zero is None:
            kname = self.kname(member)
            zero = bool(kname and kname in self.state.superblocks)
        if zero:
            self.add([self.tools("mdadm"), "--zero-superblock", member],
                     "zero the stale superblock on %s" % member, ARRAY_STAGE)
        self.add([self.tools("mdadm"), "--manage", array_path, "--add", member],
                 "add %s to array %s" % (member, array["name"]), ARRAY_STAGE,
                 precheck=probed_before(self.tools, [member], blank_member))

    def release_syncs(self):
        """Last: let the arrays this build created (or a killed build left held) sync in the background.

        A new array's initial sync would otherwise compete with every later command for the disks and
        the CPU; held while the build runs (``--action=frozen``, which the kernel forgets at reboot),
        it resumes from where it stood. Writes stay safe meanwhile: md computes full parity for
        stripes not synced yet.
        """
        for array in self.view.arrays.values():
            path = self.array_paths.get(array["name"], array["device"])
            kname = self.kname(path)
            if (path in self.fresh and syncs(array["level"])) or (kname is not None and self.state.md_frozen(kname)):
                self.add(sync_action(self.tools, "idle", path),
                         "let array %s sync in the background" % array["name"], LAST_STAGE)


def blank_member(member, probe):
    """Right before --create/--add: every member must be blank (mdadm --run would not ask)."""
    if probe:
        raise ApplyError("refusing to put %s into an array: blkid finds %s there" % (member, describe_probe(probe)))
    return True


# ---------------------------------------------------------------- guarding


class ArrayGuard:
    """Part of ``Guard``: the planned arrays, the running ones of a planned name on allowed disks (by
    kernel name), and the arrays reaching a disk being wiped."""

    def account_arrays(self, view):
        state = self.state
        self.paths.update(a["device"] for a in view.arrays.values())
        for kname in state.md_arrays():
            if state.md_name(kname) in view.arrays and state.md_tops(kname) <= self.allowed_disks:
                self.paths.add("/dev/" + kname)

    def account_wiped_arrays(self, disk):
        self.paths.update("/dev/" + md for md in arrays_reaching(self.state, disk))


# ---------------------------------------------------------------- the layout and the health


def arrays_layout(state, involved):
    """``{name: "<level> active|inactive: <members>"}`` of the arrays in or on the ``involved`` devices."""
    found = {}
    for md in state.md_arrays():
        if md in involved or set(state.md_members(md)) & involved:
            name = state.md_name(md) or md
            found[name] = "%s %s: %s" % (
                state.md_level(md) or "unknown level", "active" if state.md_active(md) else "inactive",
                " ".join("/dev/" + m for m in state.md_members(md)))
    return found


def planned_arrays_layout(view, layout):
    """Fill ``layout`` with the planned arrays and their members' superblocks."""
    for array in view.arrays.values():
        for member in array["devices"]:
            layout["filesystems"][member] = 'linux_raid_member "any:%s"' % array["name"]
        layout["arrays"][array["name"]] = "%s active: %s" % (array["level"], " ".join(array["devices"]))


def degraded_arrays(view, state):
    """One line for each planned array that lost a member (the kernel marked it faulty)."""
    problems = []
    for array in view.arrays.values():
        kname = state.kname_of(array["device"])
        faulty = state.md_faulty(kname) if kname else []
        if faulty:
            disks = sorted({disk for member in faulty for disk in state.tops.get(member, {member})})
            problems.append("array %s (%s) runs degraded: %s failed (disk %s)"
                            % (array["name"], array["device"], ", ".join(sorted(faulty)), ", ".join(disks)))
    return problems
