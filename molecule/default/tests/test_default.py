# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `make demo` machine after first boot, checked the way an operator would by hand."""
from __future__ import annotations

import json
import os
import socket
import sys

import paramiko
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import expected_disks, guest_disks, unit_properties  # noqa: E402

SSD_KINDS = ("nvme", "ssd")


def test_booted_under_uefi(host):
    assert host.file("/sys/firmware/efi").is_directory, (
        "expected /sys/firmware/efi: the ISO should boot under UEFI (OVMF)")


def test_a_root_login_prompt_runs_on_the_serial_console(host):
    getty = unit_properties(host, "serial-getty@ttyS0.service", "ActiveState", "SubState")
    assert getty == {"ActiveState": "active", "SubState": "running"}, "expected a getty on ttyS0, found %s" % getty
    on_serial = host.check_output("ps -o user=,comm= -t ttyS0").split("\n")
    assert any(line.split()[:1] == ["root"] and line.split()[-1] in ("bash", "login") for line in on_serial), (
        "expected root logged in on ttyS0 (autologin), processes there: %s" % on_serial)


def test_first_boot_finished_with_success_and_no_job_left(host):
    unit = unit_properties(host, "pre-nixos.service", "Result", "ActiveState", "SubState", "ExecMainStatus")
    assert unit == {"Result": "success", "ActiveState": "active", "SubState": "exited", "ExecMainStatus": "0"}, (
        "expected pre-nixos.service to have finished successfully, found %s; journal:\n%s"
        % (unit, host.run("journalctl -u pre-nixos --no-pager | tail -40").stdout)
    )
    jobs = host.check_output("systemctl list-jobs --no-legend")
    assert jobs == "", "expected no queued systemd job after first boot, found:\n%s" % jobs
    state = host.check_output("systemctl is-system-running || true")
    assert state == "running", "expected the boot to be complete (running), found %r" % state


def test_status_file_is_complete(host):
    status = json.loads(host.file("/run/pre-nixos/status.json").content_string)
    assert status["state"] == "done" and status["finished"], "expected a finished run in state done, found %s" % (
        {k: status.get(k) for k in ("state", "started", "finished", "reason")})
    unfinished = {name: phase["state"] for name, phase in status["phases"].items()
                  if phase["state"] not in ("done", "skipped") or not phase.get("finished")}
    assert not unfinished, "expected every phase done or skipped with a finish time, found %s" % unfinished
    unexplained = [name for name, phase in status["phases"].items()
                   if phase["state"] == "skipped" and not phase["reason"]]
    assert not unexplained, "expected a reason for every skipped phase, none for %s" % unexplained
    assert status["phases"]["storage_plan"]["state"] == "done", "expected the storage plan made, found %s" % (
        status["phases"]["storage_plan"])
    assert host.file(status["log"]).exists, "expected the run's log at %s" % status["log"]


def test_sshd_runs_and_never_waits_for_first_boot(host):
    ssh = unit_properties(host, "ssh.service", "ActiveState", "After", "Requires", "Wants", "BindsTo")
    assert ssh["ActiveState"] == "active", "expected ssh.service active, found %s" % ssh["ActiveState"]
    for prop in ("After", "Requires", "Wants", "BindsTo"):
        assert "pre-nixos.service" not in ssh[prop].split(), "ssh.service must not have %s=pre-nixos.service: %s" % (
            prop, ssh[prop])
    first_boot = unit_properties(host, "pre-nixos.service", "Before")
    assert "ssh.service" not in first_boot["Before"].split(), "pre-nixos.service must not be Before=ssh.service"


def _ssh_endpoint(host):
    variables = host.ansible.get_variables()
    return variables["ansible_host"], int(variables["ansible_port"]), variables["ansible_private_key_file"]


def test_the_build_key_logs_in_as_root(host):
    address, port, key = _ssh_endpoint(host)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(address, port=port, username="root", key_filename=key, look_for_keys=False, allow_agent=False,
                       timeout=30)
        stdout = client.exec_command("id -u")[1]
        assert stdout.read().decode().strip() == "0", "expected to be root (uid 0) after a key login"
    finally:
        client.close()


def test_password_login_is_refused(host):
    address, port = _ssh_endpoint(host)[:2]
    with socket.create_connection((address, port), timeout=30) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=30)
            with pytest.raises(paramiko.BadAuthenticationType) as refused:
                transport.auth_password("root", "root")
            assert refused.value.allowed_types == ["publickey"], (
                "expected sshd to offer publickey only, it offers %s" % refused.value.allowed_types)
            assert not transport.is_authenticated()
        finally:
            transport.close()


def test_plan_classifies_the_disks_and_excludes_the_usb_stick(host):
    plan = json.loads(host.file("/var/log/pre-nixos/plan.json").content_string)
    disks = guest_disks(host)
    planned = {disk["name"]: disk["class"] for disk in plan["disks"]}
    wanted = {name: ("ssd" if kind in SSD_KINDS else "hdd") for name, kind in disks.items() if kind != "usb"}
    assert planned == wanted, "expected the plan to class the disks as %s, found %s" % (wanted, planned)
    excluded = {entry["disk"] for entry in plan["excluded"]}
    usb = {name for name, kind in disks.items() if kind == "usb"}
    assert usb and usb <= excluded, "expected the USB stick %s excluded, excluded: %s" % (usb, plan["excluded"])


def test_plan_gives_each_group_its_role(host):
    plan = json.loads(host.file("/var/log/pre-nixos/plan.json").content_string)
    disks = guest_disks(host)
    kinds_by_vg = {}
    for disk in plan["disks"]:
        kinds_by_vg.setdefault(disk["vg"], []).append(disks[disk["name"]])
    wanted = {"main": ["nvme"], "main_1": ["ssd", "ssd"], "swap": ["hdd", "hdd"], "large": ["hdd", "hdd", "hdd"]}
    assert {vg: sorted(kinds) for vg, kinds in kinds_by_vg.items()} == wanted, (
        "expected main on the NVMe, main_1 on the SSD pair, swap on the HDD pair, large on the three HDDs; plan:\n%s"
        % plan["summary"])


def test_rotational_flags_match_the_emulated_kinds(host):
    disks = guest_disks(host)
    assert sorted(disks.values()) == sorted(disk["kind"] for disk in expected_disks()), (
        "expected the guest to see the emulated disks %s, it sees %s" % (expected_disks(), disks))
    for name, kind in disks.items():
        rotational = host.file("/sys/block/%s/queue/rotational" % name).content_string.strip()
        if kind in SSD_KINDS:
            assert rotational == "0", "%s is an emulated %s: expected rotational 0, found %s" % (name, kind, rotational)
        elif kind == "hdd":
            assert rotational == "1", "%s is an emulated HDD: expected rotational 1, found %s" % (name, rotational)
