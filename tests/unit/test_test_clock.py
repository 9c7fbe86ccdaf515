# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/test_clock.py: what `make test` runs in which order, what stops it, and the clock it keeps."""
from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import test_clock  # noqa: E402


class Ran(tuple):
    """(calls, failing, tmp_path), and the fake's ``flaky`` and ``outputs``."""

    def __new__(cls, items, flaky, outputs):
        self = super().__new__(cls, items)
        self.flaky, self.outputs = flaky, outputs
        return self


@pytest.fixture
def ran(monkeypatch, tmp_path):
    """Stages run by a fake: each command is recorded; commands naming a word in ``failing`` fail every time,
    in ``flaky`` the first time only; ``outputs[name]`` is what each run of scenario ``name`` prints, kept as
    molecule/run.sh keeps it (build/molecule-logs/NAME.log)."""
    calls, failing = [], set()
    flaky, outputs = set(), {}

    def fake_run_stage(command, environment=None):
        calls.append((command, (environment or {}).get("PRENIXOS_SKIP_ISO_BUILD")))
        name = command[-1]
        runs = [call for call, _skip in calls if call[-1] == name]
        if outputs.get(name):
            logs = tmp_path / "build" / "molecule-logs"
            logs.mkdir(parents=True, exist_ok=True)
            logs.joinpath("%s.log" % name).write_text(outputs[name][len(runs) - 1])
        return 1.5, not failing.intersection(command) and not (name in flaky and len(runs) == 1)

    monkeypatch.setattr(test_clock, "run_stage", fake_run_stage)
    monkeypatch.setattr(test_clock, "ROOT", str(tmp_path))
    return Ran((calls, failing, tmp_path), flaky, outputs)


def times(tmp_path):
    with open(tmp_path / "build" / "test-times.json") as handle:
        return json.load(handle)


def test_make_stages_then_scenarios_with_the_iso_already_built_and_a_table_of_seconds(ran, capsys):
    calls, _failing, tmp_path = ran
    assert test_clock.main(["lint", "iso", "--", "default", "fleet"]) == 0
    assert calls == [(["make", "--no-print-directory", "lint"], None), (["make", "--no-print-directory", "iso"], None),
                     (["bash", "molecule/run.sh", "default"], "1"), (["bash", "molecule/run.sh", "fleet"], "1")]
    written = times(tmp_path)
    assert written["stages"] == {"lint": 1.5, "iso": 1.5, "scenario default": 1.5, "scenario fleet": 1.5}
    assert written["failed"] == [] and written["total_s"] >= 0
    table = capsys.readouterr().out
    assert "scenario fleet" in table and "total" in table and "FAILED" not in table


def test_a_failing_make_stage_stops_the_run(ran):
    calls, failing, tmp_path = ran
    failing.add("sanity")
    assert test_clock.main(["lint", "sanity", "unit", "--", "default"]) == 1
    assert [command[-1] for command, _skip in calls] == ["lint", "sanity"]
    assert times(tmp_path)["failed"] == ["sanity"]


def test_a_failing_scenario_does_not_stop_the_others_and_fails_the_run(ran, capsys):
    calls, failing, tmp_path = ran
    failing.add("nolink")
    assert test_clock.main(["--", "nolink", "fleet"]) == 1
    assert [command[-1] for command, _skip in calls] == ["nolink", "nolink", "fleet"]
    assert times(tmp_path)["failed"] == ["scenario nolink"]
    assert re.search(r"scenario nolink +3\.0  FAILED\n", capsys.readouterr().out)


FAILED_CONVERGE = ("TASK [Read the file again] ****\n"
                   "fatal: [olddisks]: FAILED! => {\"rc\": 1, \"stderr\": \"" + "x" * 400 + "\"}\n"
                   "PLAY RECAP ****\nolddisks : ok=9 changed=2 unreachable=0 failed=1 skipped=0\n"
                   "INFO     [olddisks > converge] Executed: Failed\n")


def test_a_failed_scenario_ends_the_output_with_the_lines_that_say_why(ran, capsys):
    _calls, failing, _tmp_path = ran
    failing.add("olddisks")
    ran.outputs["olddisks"] = ["first run\n", FAILED_CONVERGE]
    assert test_clock.main(["--", "olddisks", "fleet"]) == 1
    out = capsys.readouterr().out
    why = out[out.index("==> why olddisks failed"):].splitlines()
    assert why[0] == "==> why olddisks failed (build/molecule-logs/olddisks.log):"
    assert why[1].startswith("    fatal: [olddisks]: FAILED!") and why[1].endswith(" ...") and len(why[1]) < 320
    assert why[2] == "    olddisks : ok=9 changed=2 unreachable=0 failed=1 skipped=0"
    assert why[3] == "    INFO     [olddisks > converge] Executed: Failed" and len(why) == 4
    assert "==> why fleet" not in out


def test_a_scenario_that_passes_on_its_second_run_passes_and_says_why_its_first_failed(ran, capsys):
    calls, _failing, tmp_path = ran
    ran.flaky.add("olddisks")
    ran.outputs["olddisks"] = [FAILED_CONVERGE, "all passed\n"]
    assert test_clock.main(["--", "olddisks", "fleet"]) == 0
    assert [command[-1] for command, _skip in calls] == ["olddisks", "olddisks", "fleet"]
    written = times(tmp_path)
    assert (written["failed"], written["retried"]) == ([], ["scenario olddisks"])
    assert written["stages"]["scenario olddisks"] == 3.0
    out = capsys.readouterr().out
    assert re.search(r"scenario olddisks +3\.0  passed on its second run\n", out)
    why = out[out.index("==> olddisks failed once, then passed"):].splitlines()
    assert why[0].endswith("(build/molecule-logs/olddisks.first.log):") and why[1].startswith("    fatal: [olddisks]")
    logs = tmp_path / "build" / "molecule-logs"
    assert logs.joinpath("olddisks.first.log").read_text() == FAILED_CONVERGE
    assert logs.joinpath("olddisks.log").read_text() == "all passed\n"


def test_with_no_retries_a_failed_scenario_runs_once(ran, monkeypatch):
    calls, failing, _tmp_path = ran
    failing.add("nolink")
    monkeypatch.setenv("PRENIXOS_SCENARIO_RETRIES", "0")
    assert test_clock.main(["--", "nolink"]) == 1
    assert [command[-1] for command, _skip in calls] == ["nolink"]


def test_a_failed_scenario_without_kept_output_says_so(ran, capsys):
    _calls, failing, _tmp_path = ran
    failing.add("nolink")
    assert test_clock.main(["--", "nolink"]) == 1
    assert "(no output kept at " in capsys.readouterr().out
