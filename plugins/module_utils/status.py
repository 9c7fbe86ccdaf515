# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first-boot status file, ``/run/pre-nixos/status.json``.

Shape (version 1)::

    {"version": 1, "state": "running", "started": "...", "finished": null,
     "phases": {"lan": {"state": "pending", "reason": "", "started": null, "finished": null}, ...}}

Phase and overall states are ``pending``, ``running``, ``done``, ``skipped`` and ``failed``.
Writes are atomic (a temporary file renamed over the old one), so a reader never sees half a file.
"""
from __future__ import annotations

import datetime
import json

from ansible_collections.prenixos.baseline.plugins.module_utils import issue
from ansible_collections.prenixos.baseline.plugins.module_utils.files import read_text, write_text

STATES = ("pending", "running", "done", "skipped", "failed")
PHASES = ("lan", "ssh", "storage_plan", "storage_apply", "nixos_config", "nixos_install")
DEFAULT_PATH = "/run/pre-nixos/status.json"
# The states that leave a line in the issue file.
ISSUE_STATES = ("failed", "skipped")
# The options of prenixos.baseline.firstboot_status (the module and its action plugin share them).
ARGUMENT_SPEC = {
    "phase": {"type": "str", "required": True},
    "state": {"type": "str", "required": True, "choices": list(STATES)},
    "reason": {"type": "str", "default": ""},
    "details": {"type": "raw"},
    "path": {"type": "path", "default": DEFAULT_PATH},
    "console": {"type": "str", "default": ""},
    "issue_path": {"type": "str", "default": ""},
}


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_status(phases=PHASES):
    return {
        "version": 1,
        "state": "running",
        "started": now(),
        "finished": None,
        "phases": {name: {"state": "pending", "reason": "", "started": None, "finished": None} for name in phases},
    }


def load(path=DEFAULT_PATH):
    """The status at ``path``, or a fresh one when the file is missing or unreadable."""
    try:
        with open(path) as handle:
            status = json.load(handle)
    except (OSError, ValueError):
        return new_status()
    if not isinstance(status, dict) or not isinstance(status.get("phases"), dict):
        return new_status()
    return status


def save(status, path=DEFAULT_PATH):
    write_text(None, path, json.dumps(status, indent=2, sort_keys=True) + "\n")


def set_phase(status, phase, state, reason="", details=None):
    """Record ``phase`` as ``state``; returns the updated status (a new dict)."""
    if state not in STATES:
        raise ValueError("unknown phase state %r (expected one of %s)" % (state, ", ".join(STATES)))
    status = json.loads(json.dumps(status))
    entry = status["phases"].setdefault(phase, {"state": "pending", "reason": "", "started": None, "finished": None})
    if state == "running":
        entry["started"] = entry.get("started") or now()
        entry["finished"] = None
    elif state in ("done", "skipped", "failed"):
        entry["started"] = entry.get("started") or now()
        entry["finished"] = now()
    entry["state"] = state
    entry["reason"] = reason
    if details is not None:
        entry["details"] = details
    if status.get("finished") and state != "running":
        # A phase finished after the run (the LAN retry): the run's state follows its phases again.
        failed = any(item.get("state") == "failed" for item in status["phases"].values())
        if failed:
            status["state"] = "failed"
        elif status.get("state") == "failed" and not status.get("reason"):
            status["state"] = "done"
    return status


def finish(status):
    """Close the run: failed when any phase failed, else done."""
    status = json.loads(json.dumps(status))
    failed = [name for name, entry in status["phases"].items() if entry.get("state") == "failed"]
    status["state"] = "failed" if failed else "done"
    status["finished"] = now()
    return status


def progress_line(phase, state, reason):
    return "pre-nixos: %-14s %s%s" % (phase, state, (": " + reason) if reason else "")


# The kernel's consoles, in the order of its console= arguments; the last one is /dev/console.
ACTIVE_CONSOLES = "/sys/class/tty/console/active"


def console_devices(console, active_path=ACTIVE_CONSOLES):
    """Where a line for ``console`` goes: ``/dev/console`` stands for every console the kernel writes to (the
    screen and each serial port it was given, e.g. ``console=tty0 console=ttyS1,57600``), any other path for
    itself. When the kernel's list cannot be read, ``/dev/console`` alone."""
    if console != "/dev/console":
        return [console] if console else []
    try:
        with open(active_path) as handle:
            names = handle.read().split()
    except OSError:
        names = []
    return ["/dev/%s" % name for name in names] or [console]


def announce(console, phase, state, reason):
    """The progress line on ``console`` (every kernel console for ``/dev/console``); a missing or unwritable
    console is skipped."""
    for device in console_devices(console):
        try:
            with open(device, "w") as handle:
                handle.write(progress_line(phase, state, reason) + "\n")
        except OSError:
            pass


def issue_text(existing, phase, state, reason):
    """The issue file with this phase's line: present for a failed or skipped phase, absent otherwise."""
    lines = ["pre-nixos: %s %s: %s" % (phase, state, reason or "no reason given")] if state in ISSUE_STATES else []
    # Owned: this phase's line in any state, and nothing else ("pre-nixos: lan 10.0.2.15/24" is the lan module's).
    return issue.render(existing, lines, ["pre-nixos: %s %s: " % (phase, each) for each in STATES])


def record(params, check_mode=False, diff=False, module=None):
    """What firstboot_status does with its (validated) ``params``: returns the task result.

    Writes the status file (and the issue file when asked) only when they change and not in check mode.
    """
    before = load(params["path"])
    after = set_phase(before, params["phase"], params["state"], params["reason"], params["details"])
    old_phase = before["phases"].get(params["phase"], {})
    new_phase = after["phases"][params["phase"]]
    keys = ("state", "reason", "details")
    changed = {k: old_phase.get(k) for k in keys} != {k: new_phase.get(k) for k in keys}
    issue_before = issue_after = None
    if params["issue_path"]:
        issue_before = read_text(params["issue_path"])
        issue_after = issue_text(issue_before, params["phase"], params["state"], params["reason"])
        if issue_after == (issue_before or ""):
            issue_after = issue_before
    issue_changed = issue_after != issue_before
    result = {"changed": changed or issue_changed, "status": after if changed else before}
    if diff:
        result["diff"] = [{"before": old_phase, "after": new_phase}]
        if issue_changed:
            result["diff"].append({"before": issue_before or "", "after": issue_after,
                                   "before_header": params["issue_path"], "after_header": params["issue_path"]})
    if check_mode:
        return result
    # A status record is bookkeeping: a file that cannot be written (a full /run) is a warning, never the
    # reason the job stops; the console line still goes out.
    warnings = []
    if changed:
        try:
            save(after, params["path"])
        except OSError as err:
            warnings.append("%s %s is not recorded: %s" % (params["phase"], params["state"], err))
        announce(params["console"], params["phase"], params["state"], params["reason"])
    if issue_changed:
        try:
            write_text(module, params["issue_path"], issue_after)
        except OSError as err:
            warnings.append("the login screen does not show %s: %s" % (params["phase"], err))
    if warnings:
        result["warnings"] = warnings
    return result
