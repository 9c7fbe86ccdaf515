# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one door to the system: every command the collection runs goes through here.

Commands are argument lists (never a shell string), run with ``LC_ALL=C`` through the module's
``run_command``. Unit tests hand the code a recording fake instead (``tests/unit/runners.py``).
"""
from __future__ import annotations

import collections
import time

C_LOCALE = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"}


class CommandError(Exception):
    """A command failed; carries everything an operator needs to act on it."""

    def __init__(self, argv, rc, stdout, stderr):
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            "command failed (rc=%s): %s: %s" % (rc, " ".join(self.argv), (stderr or "").strip())
        )

    def as_fail_kwargs(self):
        """Keyword arguments for ``module.fail_json``."""
        return {"msg": str(self), "cmd": self.argv, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


class Runner:
    """Runs commands through an AnsibleModule."""

    def __init__(self, module):
        self.module = module
        self.commands = []  # every argv run, in order: modules return it to the operator
        self.seconds = []  # how long each of them took, in the same order

    def run(self, argv, check=True, data=None):
        """Run ``argv``; return ``(rc, stdout, stderr)``; raise CommandError when ``check`` and rc != 0."""
        argv = [str(a) for a in argv]
        self.commands.append(argv)
        started = time.monotonic()
        try:
            rc, out, err = self.module.run_command(
                argv, environ_update=C_LOCALE, data=data, binary_data=data is not None
            )
        finally:
            self.seconds.append(time.monotonic() - started)
        if check and rc != 0:
            raise CommandError(argv, rc, out, err)
        return rc, out, err


def timing(commands, seconds, changing, slowest=5):
    """Where a run's command time went: ``changing`` (the commands that changed the machine) against
    the rest (reading the state, checks before a step), with the slowest commands."""
    left = collections.Counter(tuple(argv) for argv in changing)  # "udevadm settle" is both kinds
    spent = {"changing": 0.0, "reading": 0.0}
    for argv, took in zip(commands, seconds, strict=True):
        kind = "changing" if left[tuple(argv)] > 0 else "reading"
        left[tuple(argv)] -= kind == "changing"
        spent[kind] += took
    ranked = sorted(zip(seconds, commands, strict=True), key=lambda pair: -pair[0])[:slowest]
    return {
        "commands": len(seconds),
        "seconds": round(sum(seconds), 1),
        "changing_seconds": round(spent["changing"], 1),
        "reading_seconds": round(spent["reading"], 1),
        "slowest": ["%.1f s: %s" % (took, " ".join(argv)) for took, argv in ranked],
    }
