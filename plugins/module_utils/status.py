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
import os
import tempfile

STATES = ("pending", "running", "done", "skipped", "failed")
PHASES = ("lan", "ssh", "storage_plan", "storage_apply", "nixos_config", "nixos_install")
DEFAULT_PATH = "/run/pre-nixos/status.json"


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
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".status.")
    with os.fdopen(fd, "w") as handle:
        json.dump(status, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


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
