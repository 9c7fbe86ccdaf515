# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the stages of ``make test`` one after the other and keep their clock.

    python3 tools/test_clock.py deps venv lint sanity unit build iso -- default fleet ...

Each name before ``--`` is a make target; each after it a Molecule scenario (``molecule/run.sh NAME``,
the ISO already built). A failing make stage stops the run; a failing scenario does not stop the
others. At the end: a table of seconds per stage on stdout and ``build/test-times.json``
(``{"total_s": ..., "stages": {name: seconds}, "failed": [...]}``), then, for each failed scenario, the lines
of its output that say why (``molecule/run.sh`` keeps the whole output in ``build/molecule-logs/NAME.log``): a
CI runner that shows only the end of the output still shows the reason. The exit status is 1 if any stage failed.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def run_stage(command, environment=None):
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=environment, check=False)
    return round(time.monotonic() - started, 1), result.returncode == 0


def table(stages, failed, total):
    width = max([len(name) for name in stages] + [len("total")])
    lines = ["==> seconds per stage"]
    for name, seconds in stages.items():
        lines.append("    %s %8.1f%s" % (name.ljust(width), seconds, "  FAILED" if name in failed else ""))
    lines.append("    %s %8.1f" % ("total".ljust(width), total))
    return "\n".join(lines)


# Lines of a scenario's output that say why it failed: Ansible's failed tasks and recap, pytest's failures.
WHY = re.compile(r"fatal: |FAILED|Executed: Failed|failed=[1-9]|^E +|Error|^(?:\S+\.py):\d+: ")


def why_failed(scenario, limit=12, width=300):
    """The last ``limit`` lines of the scenario's output that say why it failed, each cut to ``width``."""
    path = os.path.join(ROOT, "build", "molecule-logs", "%s.log" % scenario)
    try:
        with open(path, errors="replace") as handle:
            lines = [line.rstrip() for line in handle if WHY.search(line)]
    except OSError:
        return ["(no output kept at %s)" % path]
    return [line[:width] + (" ..." if len(line) > width else "") for line in lines[-limit:]] or [
        "(nothing in %s says why; read it whole)" % path]


def main(argv):
    targets, scenarios = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    stages, failed = {}, []
    started = time.monotonic()
    for target in targets:
        stages[target], passed = run_stage(["make", "--no-print-directory", target])
        if not passed:
            failed.append(target)
            break
    if not failed:
        environment = dict(os.environ, PRENIXOS_SKIP_ISO_BUILD="1")
        for scenario in scenarios:
            stages["scenario " + scenario], passed = run_stage(["bash", "molecule/run.sh", scenario], environment)
            if not passed:
                failed.append("scenario " + scenario)
    total = round(time.monotonic() - started, 1)
    print(table(stages, failed, total), flush=True)
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "test-times.json"), "w") as handle:
        json.dump({"total_s": total, "stages": stages, "failed": failed}, handle, indent=2)
        handle.write("\n")
    for stage in failed:
        if stage.startswith("scenario "):
            scenario = stage[len("scenario "):]
            print("==> why %s failed (build/molecule-logs/%s.log):" % (scenario, scenario), flush=True)
            print("\n".join("    " + line for line in why_failed(scenario)), flush=True)
    if failed:
        print("==> failed: %s" % ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
