# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage convergence engine: a plan and the current state in, an ordered list of steps out.

Usage (what the ``storage_apply`` module does)::

    applier = Applier(plan, Runner(module), tools=paths, root="/mnt", wipe=False, check_mode=False)
    result = applier.run()   # {build, changed, commands, layout, before, after, notes, wiped}

``ApplyError`` carries a message for the operator (and, for a failed command, its argv, rc and
stderr); nothing else escapes ``run()`` apart from the runner's own exceptions.

How a run goes
    1. Read the state (``storage_state.read_state``).
    2. Refuse, whatever the options: a planned disk the running system lives on (re-derived from
       the live mounts, never from the plan's flags), a planned disk that is missing, that changed
       identity (its by-id link now points elsewhere) or size, a plan that is malformed, a stack on
       a planned disk that reaches a disk outside the plan (it cannot be torn down without touching
       that disk), a name (array, VG) the plan needs that is taken by something outside the plan.
    3. Take the inventory: everything on each planned disk is "ours" (what this plan builds, at the
       planned place, under the planned name) or "foreign". Foreign content without ``wipe`` →
       refuse, naming each disk and what is on it; nothing has run. A disk blkid calls blank whose
       first or last MiB is not zero (or that ends in a backup GPT header) holds unknown data: foreign.
    4. With ``wipe``: plan the whole teardown, leaf to root, of every stack on the disks with foreign
       content (and on planned disks those stacks share); refuse it, before any command, when a holder
       no kind removes is in the way (dm-crypt, multipath, bcache, a loop device: named, with what to
       do); run it (the disks' first and last MiB zeroed last), re-read, and verify that nothing is
       left there.
    5. Build: each kind's steps, in the order of ``Builder.build``, each emitted only when the state
       differs from the plan.
    6. Re-read and check that building again would do nothing; else fail with what is missing.

Check mode computes the same step list (after a wipe, from the state with the wiped disks blank)
and runs none of it; ``commands`` is that list. Every step passes a guard first (``Guard``): a
command naming a /dev path, a VG or a mount target that the plan (or the teardown of a planned
disk) does not account for is never run.

The rooms: one per device kind, each knowing how to recognise, tear down, build, guard and
describe its devices, and which stage each of its steps runs in (their docstrings say why each
step is safe to re-run after a kill between any two commands); then the shared ones:

``storage_kind_partition``  GPT tables and partitions (``sgdisk``, ``partx -u``)
``storage_kind_md``         md arrays (``mdadm``)
``storage_kind_lvm``        PVs, VGs, LVs (``pvcreate``, ``vgcreate``, ``vgextend``, ``lvcreate``)
``storage_kind_fs``         filesystems, mounts, swap (``mkfs.*``, ``mkswap``, ``mount``, ``swapon``)
``storage_inventory``       the plan checked, ours and foreign, what a wipe takes, the teardown
``storage_step``            what they share: ``Step``, the errors, the stages, the tools
``storage_state``           reading the machine, into a ``storage_state_model.StorageState``

This file is the engine: it puts the kinds' parts together (``Builder``, ``Guard``, the layout),
orders their steps, runs them and re-reads between stages. A real run builds in three stages
(partitions; ESPs and arrays; LVM, filesystems, mounts) and re-reads the state after each,
planning the next stage again with the same code: an array it assembled may bring back volumes no
plan made up front could see.

May import every storage_* room; no room imports it.
"""
from __future__ import annotations

import os
import time

from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_inventory import (
    PlanView,
    check_disks,
    check_teardown,
    foreign_message,
    leftovers,
    stack_reach,
    take_inventory,
    teardown_steps,
    wipe_closure,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_fs import (
    FilesystemBuild,
    MountGuard,
    filesystems_layout,
    mounts_layout,
    planned_esps_layout,
    planned_mounts_layout,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_lvm import (
    VolumeBuild,
    VolumeGuard,
    build_finished,
    planned_volumes_layout,
    volumes_layout,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_md import (
    ArrayBuild,
    ArrayGuard,
    arrays_layout,
    degraded_arrays,
    held_syncs,
    planned_arrays_layout,
    sync_action,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_kind_partition import (
    PartitionBuild,
    PartitionGuard,
    disk_layout,
    planned_disk_layout,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import (
    StateError,
    read_disk_edges,
    read_state,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import (
    PARTITION_STAGE,
    PREVIOUS_STAGE,
    ApplyError,
    SafetyError,
    Step,
    Tools,
    is_clean_abspath,
    settle_argv,
)

# The names the module and the tests import from here.
__all__ = ("TOOLS", "Applier", "ApplyError", "Guard", "PlanView", "SafetyError")

# Every tool a run may use; the module resolves each with get_bin_path.
TOOLS = (
    "sh", "blkid", "lsblk", "partx", "udevadm", "sgdisk", "wipefs", "mdadm",
    "pvs", "vgs", "lvs", "pvcreate", "vgcreate", "vgextend", "lvcreate", "lvchange",
    "vgchange", "vgremove", "pvremove", "mkfs.vfat", "mkfs.ext4", "mkswap",
    "mkdir", "mount", "umount", "swapon", "swapoff", "dd",
)


# ---------------------------------------------------------------- building


class Builder(PartitionBuild, FilesystemBuild, ArrayBuild, VolumeBuild):
    """The build steps for ``view`` from ``state``: each kind's, in the order of ``build``.

    ``fresh`` holds the device paths earlier steps of this run create: they start out blank, so
    later layers are built on them without looking at the (stale) state.
    """

    def __init__(self, view, state, tools, root, settle_timeout, notes):
        self.view, self.state, self.tools, self.root = view, state, tools, root
        self.settle_timeout = settle_timeout
        self.notes = notes
        self.steps = []
        self.fresh = set()
        self.array_paths = {}  # array name -> the path it is reached by (ArrayBuild; the PVs on it use it)
        self.unknown = set()  # devices whose content cannot be read yet (not in the kernel, LV inactive)

    def build(self):
        self.partitions()
        self.esp_filesystems()
        self.arrays()
        self.volume_groups()
        self.logical_volumes()
        self.volume_filesystems()
        self.mounts()
        self.swaps()
        self.release_syncs()
        self.mark_finished()
        return self.steps

    def add(self, argv, why, stage, **kwargs):
        if stage is PREVIOUS_STAGE:
            stage = self.steps[-1].stage if self.steps else PARTITION_STAGE
        self.steps.append(Step(argv, why, stage, **kwargs))

    def settle(self, why, nodes, stage):
        self.add(settle_argv(self.tools, self.settle_timeout), why, stage, wait_for=nodes)

    def kname(self, path):
        return None if path in self.fresh else self.state.kname_of(path)

    def content(self, path):
        """blkid's view of ``path`` (``{}`` for blank or newly made); None when unknown."""
        if path in self.fresh:
            return {}
        if path in self.unknown:
            return None
        kname = self.state.kname_of(path)
        return None if kname is None else self.state.probe(kname)


# ---------------------------------------------------------------- the guard


class Guard(PartitionGuard, ArrayGuard, VolumeGuard, MountGuard):
    """The last check before any command: every /dev path, VG and mount target must be accounted for.

    Accounted for: the planned disks (minus the boot disks), their planned partitions, the planned
    arrays, VGs and LV paths; the running planned arrays by kernel name; and, for a teardown, the
    devices, VGs and mounts found on the disks being wiped. An existing device a path resolves to
    must sit only on planned, non-boot disks.
    """

    def __init__(self, view, state, root, wiped_disks=()):
        self.state = state
        self.root = root
        self.allowed_disks = set(view.disks) - state.boot_disks
        self.paths, self.targets, self.vg_names, self.lv_names = set(), set(), set(), set()
        self.account_disks(view)
        self.account_arrays(view)
        self.account_volumes(view)
        self.account_mounts(view)
        for disk in wiped_disks:
            if disk not in self.allowed_disks:
                continue
            for kname in [disk] + state.descendants(disk):
                self.paths.update({"/dev/" + kname, state.node_path(kname)})
            self.account_wiped_table(disk)
            self.account_wiped_arrays(disk)
            self.account_wiped_volumes(disk)
            self.account_wiped_mounts(disk)

    def refuse(self, argv, why):
        raise SafetyError("refusing to run %s: %s" % (" ".join(argv), why), cmd=list(argv))

    def check(self, argv):
        for arg in argv[1:]:
            if arg.startswith("/dev/"):
                self.check_path(argv, arg)
            elif "=/dev/" in arg and not (os.path.basename(argv[0]) == "dd" and arg == "if=/dev/zero"):
                self.check_path(argv, arg.split("=", 1)[1])  # dd's of=/dev/sdc
        self.check_volume_names(argv)
        self.check_mount_target(argv)

    def check_path(self, argv, path):
        if path not in self.paths:
            self.refuse(argv, "%s is not a planned device nor on a disk being wiped" % path)
        kname = self.state.kname_of(path)
        if kname is None:
            return
        reach = stack_reach(self.state, kname) or {kname}
        if not reach <= self.allowed_disks:
            self.refuse(argv, "%s sits on %s, outside the planned disks or on the boot disk"
                        % (path, ", ".join(sorted(reach - self.allowed_disks))))


# ---------------------------------------------------------------- layout


def empty_layout():
    return {"disks": {}, "filesystems": {}, "arrays": {}, "volume_groups": {}, "logical_volumes": {},
            "mounts": {}, "swaps": []}


def layout_of(view, state):
    """A compact description of what is on the planned disks now."""
    layout = empty_layout()
    involved = set()
    for disk in view.disks:
        layout["disks"][disk] = disk_layout(state, disk)
        if state.present(disk):
            involved.update(state.descendants(disk))
    filesystems_layout(state, involved, layout)
    layout["arrays"] = arrays_layout(state, involved)
    volumes_layout(state, involved, layout)
    mounts_layout(state, involved, layout)
    return layout


def planned_layout(view, root, before):
    """The layout once the plan is built (check mode's "after"): sizes the plan cannot know are estimates."""
    layout = empty_layout()
    for disk in view.disks:
        layout["disks"][disk] = planned_disk_layout(view, disk, before["disks"].get(disk, ""))
    planned_esps_layout(view, layout)
    planned_arrays_layout(view, layout)
    planned_volumes_layout(view, before, layout)
    planned_mounts_layout(view, root, layout)
    for device, value in before["filesystems"].items():
        if device in layout["filesystems"] and value.split()[0] == layout["filesystems"][device].split()[0]:
            layout["filesystems"][device] = value
    return layout


# ---------------------------------------------------------------- the run


class Applier:
    """One run of storage_apply: read, refuse or tear down, build, verify (see the module docstring)."""

    def __init__(self, plan, runner, tools=None, root="/mnt", wipe=False, check_mode=False, settle_timeout=30,
                 sysfs_root="/sys", proc_root="/proc", dev_root="/dev", sleep=time.sleep, clock=time.monotonic,
                 read_edges=read_disk_edges):
        self.view = PlanView(plan)
        if not is_clean_abspath(root) or root == "/":
            raise ApplyError("root must be a clean absolute path other than /, got %r" % (root,))
        self.runner = runner
        self.tools = tools if isinstance(tools, Tools) else Tools(tools)
        self.root = root
        self.wipe = wipe
        self.check_mode = check_mode
        self.settle_timeout = settle_timeout
        self.roots = {"sysfs_root": sysfs_root, "proc_root": proc_root, "dev_root": dev_root}
        self.dev_root = dev_root
        self.sleep, self.clock = sleep, clock
        self.read_edges = read_edges  # how the first and last MiB of a blank disk are read (tests: their machine's)
        self.executed = []
        self.notes = []

    def read(self):
        try:
            return read_state(self.runner, list(self.view.disks), self.tools.paths, settle_timeout=self.settle_timeout,
                              read_edges=self.read_edges, **self.roots)
        except StateError as err:
            raise ApplyError("cannot read the storage state: %s" % err) from None
        except CommandError as err:
            raise ApplyError("cannot read the storage state: %s" % err, **command_details(err)) from None

    def run(self):
        state = self.read()
        before = layout_of(self.view, state)
        check_disks(self.view, state)
        inventory = take_inventory(self.view, state, self.root)
        wiped = []
        if inventory.foreign:
            wiped, conflicts = wipe_closure(self.view, state, inventory.foreign)
            inventory.conflicts += conflicts
        if inventory.conflicts:
            raise ApplyError("refusing to apply the plan: " + "; ".join(inventory.conflicts),
                             conflicts=inventory.conflicts, foreign=inventory.foreign)
        if inventory.foreign and not self.wipe:
            raise ApplyError(foreign_message(inventory), foreign=inventory.foreign)

        planned = []
        if wiped:
            teardown = teardown_steps(state, wiped, self.tools, self.settle_timeout)
            check_teardown(state, wiped)
            self.guard(teardown, Guard(self.view, state, self.root, wiped))
            planned += teardown
            if self.check_mode:
                state = state.without_disks(wiped)
            else:
                self.execute(teardown, Guard(self.view, state, self.root, wiped))
                state = self.read()
                left = leftovers(state, wiped)
                if left:
                    raise ApplyError("the teardown did not leave %s blank: %s" % (", ".join(wiped), "; ".join(left)),
                                     leftovers=left)
                check_disks(self.view, state)
                again = take_inventory(self.view, state, self.root)
                if again.foreign or again.conflicts:
                    raise ApplyError("after the teardown the disks still hold foreign content: %s"
                                     % foreign_message(again))

        build = Builder(self.view, state, self.tools, self.root, self.settle_timeout, self.notes).build()
        self.guard(build, Guard(self.view, state, self.root))
        if self.check_mode:
            planned += build
            after = planned_layout(self.view, self.root, before) if planned else before
            return self.result(bool(planned), [step.argv for step in planned], before, after, wiped,
                               build_finished(self.view, state))

        try:
            final = self.build_in_stages(state, build)
        except ApplyError:
            self.release_held()
            raise
        self.refuse_faulty_members(final)
        return self.result(bool(self.executed), list(self.executed), before, layout_of(self.view, final),
                           wiped, build_finished(self.view, final))

    def build_in_stages(self, state, build):
        """Run the first stage of ``build``, re-read, plan again; until planning finds nothing to do.

        The plan of each stage comes from the same Builder that check mode uses; re-reading between
        stages lets a real run see what it could not predict (the volumes on an array it assembled).
        """
        previous = None
        for _attempt in range(8):
            if not build:
                return state
            stage = min(step.stage for step in build)
            steps = [step for step in build if step.stage == stage]
            if previous is not None and [s.argv for s in steps] == previous:
                break
            self.execute(steps, Guard(self.view, state, self.root))
            previous = [s.argv for s in steps]
            state = self.read()
            check_disks(self.view, state)
            build = Builder(self.view, state, self.tools, self.root, self.settle_timeout, self.notes).build()
            self.guard(build, Guard(self.view, state, self.root))
        raise ApplyError("the disks did not converge to the plan; still to do: %s"
                         % "; ".join(step.why for step in build), commands=list(self.executed))

    def release_held(self):
        """After a failed build: let the arrays this run held sync again (best effort; a reboot does too)."""
        for array_path in held_syncs(self.executed, self.tools):
            self.runner.run(sync_action(self.tools, "idle", array_path), check=False)

    def refuse_faulty_members(self, state):
        """A planned array that lost a member (the kernel marked it faulty) fails the run, layout kept."""
        problems = degraded_arrays(self.view, state)
        if problems:
            raise ApplyError("%s; the layout is built and kept, replace the disk and run again to rebuild the array"
                             % "; ".join(problems), faulty=problems, commands=list(self.executed),
                             layout=layout_of(self.view, state))

    def gone_message(self, message):
        """``message``, or what to say instead when a planned disk has gone since the run started."""
        gone = self.disks_gone()
        if not gone:
            return message
        return ("planned disk %s disappeared during the build (%s); nothing more was done, what is built is kept: "
                "run again once the disk is back, or plan again without it" % (", ".join(gone), message))

    def disks_gone(self):
        """Planned disks whose device node has gone since the run started (a disk pulled or dropped)."""
        return [disk for disk in self.view.disks if not os.path.exists(os.path.join(self.dev_root, disk))]

    def result(self, changed, commands, before, after, wiped, finished):
        return {
            "build": {"id": self.view.identity.id, "finished": finished},
            "changed": changed,
            "commands": commands,
            "layout": after if not self.check_mode else before,
            "before": before,
            "after": after,
            "notes": list(dict.fromkeys(self.notes)),  # each stage plans again: say each thing once
            "wiped": list(wiped),
        }

    def guard(self, steps, guard):
        for step in steps:
            guard.check(step.argv)

    def execute(self, steps, guard):
        for step in steps:
            guard.check(step.argv)
            try:
                if step.precheck is not None and not step.precheck(self.runner):
                    continue
                argv = step.resolve(self.runner) if step.resolve is not None else step.argv
            except (StateError, CommandError) as err:
                # The read right before the step: nothing of the step ran, nothing else may escape run().
                details = command_details(err) if isinstance(err, CommandError) else {}
                message = "%s: cannot read the device again right before it: %s" % (step.why, err)
                raise ApplyError(self.gone_message(message), commands=list(self.executed), **details) from None
            guard.check(argv)
            try:
                self.runner.run(argv)
            except CommandError as err:
                message = "%s failed: %s" % (step.why, err)
                if step.hint:
                    message += " (%s)" % step.hint
                raise ApplyError(self.gone_message(message), commands=self.executed + [argv],
                                 **command_details(err)) from None
            self.executed.append(list(argv))
            if step.wait_for:
                self.wait_for_nodes(step.wait_for, step.why)

    def wait_for_nodes(self, paths, why):
        deadline = self.clock() + self.settle_timeout
        while True:
            missing = [path for path in paths if not os.path.exists(os.path.join(self.dev_root, path[len("/dev/"):]))]
            if not missing:
                return
            if self.clock() >= deadline:
                raise ApplyError("%s did not appear within %d s (after: %s)"
                                 % (", ".join(missing), self.settle_timeout, why), commands=list(self.executed))
            self.sleep(0.2)


def command_details(err):
    details = err.as_fail_kwargs()
    details.pop("msg", None)
    return details
