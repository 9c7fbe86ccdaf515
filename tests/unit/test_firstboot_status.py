from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from module_harness import run_module

from ansible_collections.prenixos.baseline.plugins.module_utils import status
from ansible_collections.prenixos.baseline.plugins.modules import firstboot_status


def test_a_new_status_lists_every_phase_as_pending():
    fresh = status.new_status()
    assert fresh["state"] == "running" and fresh["finished"] is None
    assert {name: entry["state"] for name, entry in fresh["phases"].items()} == dict.fromkeys(status.PHASES, "pending")


def test_finishing_a_run_with_a_failed_phase_fails_the_run():
    run = status.set_phase(status.new_status(), "lan", "failed", "no NIC has a link")
    run = status.set_phase(run, "storage_plan", "done")
    finished = status.finish(run)
    assert finished["state"] == "failed" and finished["finished"]
    assert finished["phases"]["lan"]["reason"] == "no NIC has a link"
    assert finished["phases"]["lan"]["started"] and finished["phases"]["lan"]["finished"]


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="unknown phase state 'halfway'"):
        status.set_phase(status.new_status(), "lan", "halfway")


def test_the_module_records_a_phase_once_and_prints_it_on_the_console(tmp_path, capsys):
    path, console = tmp_path / "status.json", tmp_path / "console"
    console.touch()
    args = {"phase": "storage_plan", "state": "done", "reason": "plan written", "path": str(path),
            "console": str(console)}
    first = run_module(firstboot_status.main, args, capsys)
    second = run_module(firstboot_status.main, args, capsys)
    assert (first["changed"], second["changed"]) == (True, False)
    saved = json.loads(path.read_text())
    assert saved["phases"]["storage_plan"]["state"] == "done"
    assert saved["phases"]["lan"]["state"] == "pending"
    assert console.read_text() == "pre-nixos: storage_plan   done: plan written\n"


def test_the_module_in_check_mode_writes_nothing(tmp_path, capsys):
    path = tmp_path / "status.json"
    result = run_module(firstboot_status.main, {"phase": "lan", "state": "running", "path": str(path)}, capsys,
                        check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"][0]["after"]["state"] == "running"
    assert not path.exists()


def test_a_skipped_phase_tells_why_in_the_issue_file_and_a_done_one_takes_the_line_back(tmp_path, capsys):
    path, issue_path = tmp_path / "status.json", tmp_path / "issue"
    issue_path.write_text("Debian GNU/Linux 12 \\n \\l\n\npre-nixos: ssh root@10.0.2.15\n\n")
    refused = {"phase": "storage_apply", "state": "skipped", "reason": "sdb holds data; boot with prenixos.wipe=1",
               "path": str(path), "issue_path": str(issue_path)}
    first = run_module(firstboot_status.main, refused, capsys)
    again = run_module(firstboot_status.main, refused, capsys)
    assert (first["changed"], again["changed"]) == (True, False)
    assert issue_path.read_text() == (
        "Debian GNU/Linux 12 \\n \\l\n\npre-nixos: ssh root@10.0.2.15\n\n"
        "pre-nixos: storage_apply skipped: sdb holds data; boot with prenixos.wipe=1\n\n"
    )
    built = dict(refused, state="done", reason="built")
    assert run_module(firstboot_status.main, built, capsys)["changed"] is True
    assert issue_path.read_text() == "Debian GNU/Linux 12 \\n \\l\n\npre-nixos: ssh root@10.0.2.15\n\n"


def test_the_issue_line_in_check_mode_is_a_diff_and_nothing_is_written(tmp_path, capsys):
    path, issue_path = tmp_path / "status.json", tmp_path / "issue"
    args = {"phase": "storage_apply", "state": "failed", "reason": "mdadm failed", "path": str(path),
            "issue_path": str(issue_path)}
    result = run_module(firstboot_status.main, args, capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"][1] == {"before": "", "after": "pre-nixos: storage_apply failed: mdadm failed\n\n",
                                 "before_header": str(issue_path), "after_header": str(issue_path)}
    assert not path.exists() and not issue_path.exists()


def test_a_failed_phase_done_after_the_run_finished_makes_the_run_done():
    run = status.finish(status.set_phase(status.new_status(), "lan", "failed", "no NIC has a link"))
    assert run["state"] == "failed"
    retried = status.set_phase(run, "lan", "done", "ssh root@10.0.2.15")
    assert (retried["state"], retried["finished"]) == ("done", run["finished"])


def test_a_run_that_failed_for_its_own_reason_stays_failed_when_a_phase_is_done_later():
    run = status.finish(status.set_phase(status.new_status(), "lan", "failed", "no link"))
    run["reason"] = "ansible-playbook exited with code 2; see /log"
    assert status.set_phase(run, "lan", "done")["state"] == "failed"
    assert status.set_phase(status.finish(status.new_status()), "ssh", "failed", "bad key")["state"] == "failed"


def run_playbook(tmp_path, tasks, *options):
    """ansible-playbook against localhost (connection local) with the checkout's collection."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"name": "Status", "hosts": "localhost", "gather_facts": False,
                                     "tasks": tasks}]))
    environment = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                       ANSIBLE_COLLECTIONS_PATH=os.path.join(root, "collections"))
    playbook_command = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run([playbook_command, str(playbook), *options], capture_output=True, text=True,
                          env=environment, cwd=tmp_path, check=False)


def test_over_a_local_connection_the_status_is_recorded_without_running_a_module(tmp_path):
    path, issue_path = tmp_path / "status.json", tmp_path / "issue"
    task = {"name": "Record", "prenixos.baseline.firstboot_status": {
        "phase": "storage_apply", "state": "skipped", "reason": "sdb holds data", "path": str(path),
        "issue_path": str(issue_path)}}
    # The module would need this to start: a broken module path proves the action did the work itself.
    first = run_playbook(tmp_path, [task], "-e", "ansible_python_interpreter=/nonexistent/python")
    assert first.returncode == 0 and "changed=1" in first.stdout, first.stdout + first.stderr
    assert json.loads(path.read_text())["phases"]["storage_apply"]["reason"] == "sdb holds data"
    assert issue_path.read_text() == "pre-nixos: storage_apply skipped: sdb holds data\n\n"
    again = run_playbook(tmp_path, [task], "-e", "ansible_python_interpreter=/nonexistent/python")
    assert "changed=0" in again.stdout, again.stdout


def test_the_action_refuses_a_bad_state_as_the_module_does(tmp_path):
    task = {"name": "Record", "prenixos.baseline.firstboot_status": {
        "phase": "lan", "state": "halfway", "path": str(tmp_path / "status.json")}}
    result = run_playbook(tmp_path, [task])
    assert result.returncode != 0 and "value of state must be one of" in result.stdout, result.stdout
    assert not (tmp_path / "status.json").exists()


def test_check_mode_over_a_local_connection_writes_nothing(tmp_path):
    path = tmp_path / "status.json"
    task = {"name": "Record", "prenixos.baseline.firstboot_status": {"phase": "lan", "state": "running",
                                                                     "path": str(path)}}
    result = run_playbook(tmp_path, [task], "--check")
    assert result.returncode == 0 and "changed=1" in result.stdout, result.stdout
    assert not path.exists()


def test_a_phase_line_taken_out_of_the_middle_leaves_the_issue_file_as_the_lan_writes_it():
    from ansible_collections.prenixos.baseline.plugins.module_utils import networkd

    banner = "Debian GNU/Linux 12 \\n \\l\n\n"
    lan_lines = ["pre-nixos: ssh root@10.0.2.15", "pre-nixos: lan 10.0.2.15/24 on lan"]
    refused = status.issue_text(networkd.render_issue(banner, lan_lines), "storage_apply", "skipped", "sdb holds data")
    lan_again = networkd.render_issue(refused, lan_lines)
    built = status.issue_text(lan_again, "storage_apply", "done", "built")
    assert built == networkd.render_issue(built, lan_lines) == networkd.render_issue(banner, lan_lines)


def test_the_lan_lines_and_a_phase_line_keep_their_places_so_a_run_that_changes_nothing_leaves_the_file():
    # First boot renders the lan lines, then a phase's line, every run: neither may move the other's lines,
    # or each run rewrites the file twice and reports lan as changed.
    from ansible_collections.prenixos.baseline.plugins.module_utils import networkd

    banner = "Debian GNU/Linux 12 \\n \\l\n\n"
    lan_lines = ["pre-nixos: ssh root@10.0.2.15", "pre-nixos: lan 10.0.2.15/24 on lan"]
    refused = status.issue_text(networkd.render_issue(banner, lan_lines), "storage_apply", "skipped", "sdb holds data")
    assert networkd.render_issue(refused, lan_lines) == refused
    assert status.issue_text(refused, "storage_apply", "skipped", "sdb holds data") == refused
    # A phase line written before the lan's first lines stays above them; new lan lines replace the old in place.
    failed_first = networkd.render_issue(status.issue_text(banner, "storage_plan", "failed", "no disks"), lan_lines)
    assert status.issue_text(failed_first, "storage_plan", "failed", "no disks") == failed_first
    phase_line = refused[len(networkd.render_issue(banner, lan_lines)):]
    renewed = networkd.render_issue(refused, ["pre-nixos: ssh root@10.0.2.16"])
    assert renewed == banner + "pre-nixos: ssh root@10.0.2.16\n\n" + phase_line


def test_a_phase_line_never_takes_the_lan_modules_lines_with_it():
    lan_lines = "pre-nixos: ssh root@10.0.2.15\npre-nixos: lan 10.0.2.15/24 on lan\n\n"
    failed = status.issue_text(lan_lines, "lan", "failed", "no carrier")
    assert failed == lan_lines.rstrip("\n") + "\n\npre-nixos: lan failed: no carrier\n\n"
    assert status.issue_text(failed, "lan", "done", "") == lan_lines


def test_dev_console_stands_for_every_console_the_kernel_writes_to(tmp_path):
    active = tmp_path / "active"
    active.write_text("tty0 ttyS1\n")
    assert status.console_devices("/dev/console", str(active)) == ["/dev/tty0", "/dev/ttyS1"]
    assert status.console_devices("/dev/console", str(tmp_path / "missing")) == ["/dev/console"]
    assert status.console_devices("/dev/ttyS0", str(active)) == ["/dev/ttyS0"]
    assert status.console_devices("", str(active)) == []


def test_the_progress_line_goes_to_each_console_and_a_missing_one_is_skipped(tmp_path, monkeypatch):
    screen, serial = tmp_path / "tty0", tmp_path / "ttyS1"
    monkeypatch.setattr(status, "console_devices",
                        lambda console: [str(screen), str(tmp_path / "gone" / "ttyS0"), str(serial)])
    status.announce("/dev/console", "lan", "running", "")
    assert screen.read_text() == serial.read_text() == "pre-nixos: lan            running\n"
