from __future__ import annotations

import pytest
from runners import RecordingRunner, local_runner

from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError, timing


def test_runner_runs_argument_lists_in_the_c_locale():
    rc, out, unused_err = local_runner().run(["sh", "-c", 'printf "%s" "$LC_ALL"'])
    assert (rc, out) == (0, "C")


def test_runner_failure_names_the_command_its_rc_and_stderr():
    with pytest.raises(CommandError) as err:
        local_runner().run(["sh", "-c", "echo boom >&2; exit 3"])
    assert err.value.rc == 3
    assert err.value.argv == ["sh", "-c", "echo boom >&2; exit 3"]
    assert "boom" in str(err.value) and "rc=3" in str(err.value)


def test_recording_runner_answers_by_longest_prefix_and_records_calls():
    fake = RecordingRunner({("mdadm",): (0, "any", ""), ("mdadm", "--detail"): (1, "", "no such array")})
    assert fake.run(["mdadm", "--examine", "/dev/sda"]) == (0, "any", "")
    assert fake.run(["mdadm", "--detail", "/dev/md/main"], check=False) == (1, "", "no such array")
    with pytest.raises(CommandError):
        fake.run(["mdadm", "--detail", "/dev/md/x"])
    assert fake.calls[0] == ["mdadm", "--examine", "/dev/sda"]
    assert len(fake.calls) == 3


def test_timing_splits_the_commands_that_changed_the_machine_from_the_reads_and_names_the_slowest():
    commands = [["udevadm", "settle"], ["lsblk"], ["sgdisk", "--clear", "/dev/sda"], ["udevadm", "settle"],
                ["mkfs.ext4", "/dev/sda1"]]
    seconds = [0.5, 1.0, 2.0, 0.25, 4.0]
    summary = timing(commands, seconds, [["sgdisk", "--clear", "/dev/sda"], ["udevadm", "settle"],
                                         ["mkfs.ext4", "/dev/sda1"]], slowest=2)
    assert summary == {"commands": 5, "seconds": 7.8, "changing_seconds": 6.5, "reading_seconds": 1.2,
                       "slowest": ["4.0 s: mkfs.ext4 /dev/sda1", "2.0 s: sgdisk --clear /dev/sda"]}


def test_the_runner_times_every_command_even_a_failing_one():
    runner = local_runner()
    with pytest.raises(CommandError):
        runner.run(["false"])
    runner.run(["true"])
    assert len(runner.seconds) == len(runner.commands) == 2 and all(s >= 0 for s in runner.seconds)
