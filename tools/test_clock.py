# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the stages of ``make test`` one after the other and keep their clock.

    python3 tools/test_clock.py deps venv lint sanity unit build iso -- default fleet ...

Each name before ``--`` is a make target; each after it a Molecule scenario (``molecule/run.sh NAME``,
the ISO already built). A failing make stage stops the run; a failing scenario does not stop the
others. At the end: a table of seconds per stage on stdout and ``build/test-times.json``
(``{"total_s": ..., "stages": {name: seconds}, "failed": [...]}``), then, for each failed scenario, the lines
of its output that say why (``molecule/run.sh`` keeps the whole output in ``build/molecule-logs/NAME.log``): a
CI runner that shows only the end of the output still shows the reason. A failed scenario is run once more
(``PRENIXOS_SCENARIO_RETRIES``, 1 by default; 0 for none): one that passes then counts as passed, but the table
says so, ``test-times.json`` lists it under ``retried``, the first run's output is kept as
``build/molecule-logs/NAME.first.log`` and the lines that say why it failed are printed at the end all the same.
The exit status is 1 if any stage failed.
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


def table(stages, failed, total, retried=()):
    width = max([len(name) for name in stages] + [len("total")])
    lines = ["==> seconds per stage"]
    for name, seconds in stages.items():
        mark = "  FAILED" if name in failed else "  passed on its second run" if name in retried else ""
        lines.append("    %s %8.1f%s" % (name.ljust(width), seconds, mark))
    lines.append("    %s %8.1f" % ("total".ljust(width), total))
    return "\n".join(lines)


# Lines of a scenario's output that say why it failed: Ansible's failed tasks and recap, pytest's failures.
WHY = re.compile(r"fatal: |FAILED|Executed: Failed|failed=[1-9]|^E +|Error|^(?:\S+\.py):\d+: ")


def scenario_log(scenario, run=""):
    return os.path.join(ROOT, "build", "molecule-logs", "%s%s.log" % (scenario, run))


def why_failed(path, limit=12, width=300):
    """The last ``limit`` lines of a scenario's output at ``path`` that say why it failed, each cut to ``width``."""
    try:
        with open(path, errors="replace") as handle:
            lines = [line.rstrip() for line in handle if WHY.search(line)]
    except OSError:
        return ["(no output kept at %s)" % path]
    return [line[:width] + (" ..." if len(line) > width else "") for line in lines[-limit:]] or [
        "(nothing in %s says why; read it whole)" % path]


def main(argv):
    targets, scenarios = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    stages, failed, retried = {}, [], []
    started = time.monotonic()
    for target in targets:
        stages[target], passed = run_stage(["make", "--no-print-directory", target])
        if not passed:
            failed.append(target)
            break
    if not failed:
        environment = dict(os.environ, PRENIXOS_SKIP_ISO_BUILD="1")
        retries = int(os.environ.get("PRENIXOS_SCENARIO_RETRIES", "1"))
        for scenario in scenarios:
            stage = "scenario " + scenario
            stages[stage], passed = run_stage(["bash", "molecule/run.sh", scenario], environment)
            if not passed and retries:
                if os.path.exists(scenario_log(scenario)):
                    os.replace(scenario_log(scenario), scenario_log(scenario, ".first"))
                seconds, passed = run_stage(["bash", "molecule/run.sh", scenario], environment)
                stages[stage] = round(stages[stage] + seconds, 1)
                if passed:
                    retried.append(stage)
            if not passed:
                failed.append(stage)
    total = round(time.monotonic() - started, 1)
    print(table(stages, failed, total, retried), flush=True)
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "test-times.json"), "w") as handle:
        json.dump({"total_s": total, "stages": stages, "failed": failed, "retried": retried}, handle, indent=2)
        handle.write("\n")
    for stage in retried:
        scenario = stage[len("scenario "):]
        print("==> %s failed once, then passed; why the first run failed (build/molecule-logs/%s.first.log):"
              % (scenario, scenario), flush=True)
        print("\n".join("    " + line for line in why_failed(scenario_log(scenario, ".first"))), flush=True)
    for stage in failed:
        if stage.startswith("scenario "):
            scenario = stage[len("scenario "):]
            print("==> why %s failed (build/molecule-logs/%s.log):" % (scenario, scenario), flush=True)
            print("\n".join("    " + line for line in why_failed(scenario_log(scenario))), flush=True)
    if failed:
        print("==> failed: %s" % ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
