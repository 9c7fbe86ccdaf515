# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every room of the storage engine shares: a step, the errors, the build stages, the tools,
how a device is described to people, and the check a step makes right before it writes.

The rooms: one per device kind (``storage_kind_partition``, ``storage_kind_md``,
``storage_kind_lvm``, ``storage_kind_fs``), the inventory (``storage_inventory``) and the engine
(``storage_apply``). They all import this file; it imports only ``storage_state`` (to probe) and
``block_devices`` (the md node types), never a room.
"""
from __future__ import annotations

import os

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import MD_TYPES
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import probe_device

KiB = 1024
MiB = 1024 ** 2

# The build stages a step declares. A real run re-reads the state after each stage and plans the next
# one again (``Applier.build_in_stages``): what an assembled array brings back is seen before LVM is touched.
PARTITION_STAGE = 1  # partition tables, and the kernel listing their partitions
ARRAY_STAGE = 2  # the ESPs' filesystems and the md arrays
LAST_STAGE = 3  # LVM, the filesystems on the volumes, mounts, swap, releasing the held syncs
PREVIOUS_STAGE = None  # the stage of the step before it (the first stage when there is none)


class ApplyError(Exception):
    """The run stops; ``msg`` tells the operator why and what to do. ``details`` go into the result."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.msg = message
        self.details = details


class SafetyError(ApplyError):
    """A command would have named a device, VG or path the plan does not account for."""


class Step:
    """One command of the run.

    ``stage``: the build stage it belongs to (``PARTITION_STAGE``...; None for a teardown step,
    which runs with the whole teardown before the build).
    ``wait_for``: /dev paths that must exist after it (polled up to the settle timeout).
    ``precheck(runner)``: run right before (real runs only); returns False to skip the step, raises
    ApplyError to stop. ``resolve(runner)``: returns the argv to run, for values known only then.
    ``hint``: added to the error message when the command fails.
    """

    def __init__(self, argv, why, stage=None, wait_for=(), precheck=None, resolve=None, hint=None):
        self.argv = [str(arg) for arg in argv]
        self.why = why
        self.stage = stage
        self.wait_for = tuple(wait_for)
        self.precheck = precheck
        self.resolve = resolve
        self.hint = hint

    def __repr__(self):
        return "Step(%r)" % (self.argv,)


class Tools:
    """Tool name → path (get_bin_path's answer); a bare name when not given."""

    def __init__(self, paths=None):
        self.paths = dict(paths or {})

    def __call__(self, name):
        return self.paths.get(name, name)


def settle_argv(tools, settle_timeout):
    return [tools("udevadm"), "settle", "-t", str(settle_timeout)]


def probed_before(tools, devices, decide):
    """A step's precheck: right before it runs, probe each of ``devices`` again (``blkid -p``, one at a time).

    ``decide(device, probe)`` returns True (go on), False (skip the step) or raises ApplyError (stop
    the run): the decision to write was made on the state read earlier, and a device may have changed
    since (a kill, another tool).
    """

    def precheck(runner):
        for device in devices:
            if not decide(device, probe_device(runner, tools.paths, device)):
                return False
        return True

    return precheck


def describe_probe(probe):
    if probe.get("AMBIVALENT"):
        return "several signatures"
    kind = probe.get("TYPE") or ("%s partition table" % probe["PTTYPE"] if probe.get("PTTYPE") else "data")
    label = probe.get("LABEL")
    return '%s "%s"' % (kind, label) if label else kind


def device_label(state, kname):
    """How a device is named to people: LV path, /dev/md/NAME, or /dev/KNAME."""
    volume = state.lv_of_kname(kname)
    if volume is not None:
        return volume["path"]
    if state.node_type(kname) in MD_TYPES and state.md_name(kname):
        return "/dev/md/" + state.md_name(kname)
    return "/dev/" + kname


def is_clean_abspath(path):
    return (isinstance(path, str) and path.startswith("/") and os.path.normpath(path) == path
            and ".." not in path.split("/") and "\n" not in path)
