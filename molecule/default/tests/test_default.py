# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `make demo` machine after first boot, checked the way an operator would by hand."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import paramiko
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    CONSOLE_LANDMARKS,
    expected_disks,
    first_boot_status,
    guest_disks,
    guest_json,
    links_by_mac,
    nic_macs,
    nixos_configuration,
    plan,
    planned_mounts,
    serial_log,
    unit_properties,
)

SSD_KINDS = ("nvme", "ssd")


def test_booted_under_uefi(host):
    assert host.file("/sys/firmware/efi").is_directory, (
        "expected /sys/firmware/efi: the ISO should boot under UEFI (OVMF)")


@pytest.mark.parametrize("what, pattern", CONSOLE_LANDMARKS)
def test_ttys0_shows_the_menu_the_kernel_first_boot_and_a_getty(what, pattern):
    assert re.search(pattern, serial_log()), "expected %s on ttyS0 (%s)" % (what, pattern)


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


@pytest.mark.parametrize("method", ["password", "keyboard-interactive"])
def test_password_and_keyboard_interactive_logins_are_refused(host, method):
    address, port = _ssh_endpoint(host)[:2]
    with socket.create_connection((address, port), timeout=30) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=30)
            with pytest.raises(paramiko.BadAuthenticationType) as refused:
                if method == "password":
                    transport.auth_password("root", "root")
                else:
                    transport.auth_interactive("root", lambda title, instructions, prompts: ["root"] * len(prompts))
            assert refused.value.allowed_types == ["publickey"], (
                "expected sshd to offer publickey only to a %s login, it offers %s"
                % (method, refused.value.allowed_types))
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
        % json.dumps(plan["disks"], indent=1))


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


# The demo machine is a server's hardware, not virtio: Intel NICs, SSDs on AHCI, HDDs behind a MegaRAID SAS
# controller, an NVMe disk, a USB stick (tests/vm/machines/default.json).
CONTROLLERS = {"ssd": "ahci", "hdd": "megaraid_sas", "usb": "usb-storage"}
NIC_DRIVERS = ["e1000", "e1000e"]


def test_each_disk_sits_behind_the_controller_the_machine_gives_it_and_every_one_but_the_stick_is_planned(host):
    found = dict(line.split() for line in host.check_output(
        "for d in /sys/block/sd*; do h=$(readlink -f $d/device | grep -o 'host[0-9]*' | head -n1);"
        " echo ${d##*/} $(cat /sys/class/scsi_host/$h/proc_name); done").splitlines())
    disks = guest_disks(host)
    wanted = {name: CONTROLLERS[kind] for name, kind in disks.items() if kind in CONTROLLERS}
    assert {name: found.get(name) for name in wanted} == wanted, "expected the disks behind %s, found %s" % (
        wanted, found)
    nvme = [name for name, kind in disks.items() if kind == "nvme"]
    assert nvme and all(host.file("/sys/block/%s/device/device/driver" % name).linked_to.endswith("/nvme")
                        for name in nvme), "expected the NVMe disk on the nvme driver"
    planned = {disk["name"] for disk in plan(host)["disks"]}
    assert planned == {name for name, kind in disks.items() if kind != "usb"}, (
        "expected every disk but the stick planned: %s" % planned)


def test_the_nics_are_intel_ones_and_lan_is_the_e1000e_with_the_link(host):
    links = links_by_mac(host)
    drivers = [host.file("/sys/class/net/%s/device/driver" % links[mac]).linked_to.rsplit("/", 1)[-1]
               for mac in nic_macs()]
    assert drivers == NIC_DRIVERS, "expected the NICs on %s, found %s" % (NIC_DRIVERS, drivers)
    assert links[nic_macs()[1]] == "lan"


# ---------------------------------------------------------------- LAN


def test_lan_is_the_nic_that_had_the_link_with_its_dhcp_address(host):
    macs = nic_macs()
    links = links_by_mac(host)
    assert links.get(macs[1]) == "lan", "expected the NIC with the link (%s) named lan, links: %s" % (macs[1], links)
    assert links.get(macs[0], "").startswith("en"), (
        "expected the NIC without a link (%s) to keep its kernel name, links: %s" % (macs[0], links))
    (lan,) = guest_json(host, "ip -j -4 addr show dev lan")
    addresses = [(a["local"], a["prefixlen"]) for a in lan["addr_info"] if a.get("family") == "inet"]
    assert addresses == [("10.0.2.15", 24)], "expected 10.0.2.15/24 on lan from DHCP, found %s" % addresses
    link_file = host.file("/etc/systemd/network/10-lan.link").content_string
    assert "Name=lan" in link_file and "MACAddress=%s" % macs[1] in link_file, (
        "expected 10-lan.link to name lan by the MAC %s, found:\n%s" % (macs[1], link_file))
    status = first_boot_status(host)["phases"]["lan"]
    assert (status["state"], status["details"]["address"], status["details"]["mac"]) == (
        "done", "10.0.2.15", macs[1]), "expected the lan phase done with its address, found %s" % status


def test_the_operator_is_told_where_to_ssh_on_the_console_and_before_the_login_prompt(host):
    issue = host.file("/etc/issue").content_string
    assert "pre-nixos: ssh root@10.0.2.15" in issue, "expected /etc/issue to say ssh root@10.0.2.15:\n%s" % issue
    assert "ssh root@10.0.2.15" in serial_log(), "expected the serial console to show ssh root@10.0.2.15"


def test_lan_takes_the_router_advertisement_and_the_operator_sees_the_ipv6_address_beside_the_ipv4_one(host):
    details = first_boot_status(host)["phases"]["lan"]["details"]
    address6 = details.get("address6") or ""
    assert address6.startswith("fd00:5052:") and details.get("prefix6") == 64, (
        "expected lan to get an address of QEMU's advertised prefix fd00:5052::/64, found %s" % details)
    line = "pre-nixos: ssh root@%s" % address6
    issue = host.file("/etc/issue").content_string.splitlines()
    assert line in issue and issue.index(line) == issue.index("pre-nixos: ssh root@10.0.2.15") + 1, (
        "expected %r right after the IPv4 ssh line in /etc/issue:\n%s" % (line, "\n".join(issue)))
    assert line in serial_log(), "expected the serial console to show %r" % line
    listening = {fields.split()[3] for fields in host.check_output("ss -Hltn sport = :22").splitlines()}
    assert {"0.0.0.0:22", "[::]:22"} <= listening, "expected sshd on 0.0.0.0:22 and [::]:22, found %s" % listening


def test_the_host_key_fingerprint_is_shown_next_to_the_ssh_line_and_is_the_key_sshd_presents(host):
    # ssh-keygen -lf: "256 SHA256:... root@pre-nixos (ED25519)"
    printed = host.check_output("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()
    assert printed[1].startswith("SHA256:") and printed[-1] == "(ED25519)", (
        "expected ssh-keygen -lf to print a SHA256 fingerprint of an ED25519 key, found %s" % printed)
    line = "pre-nixos: host key %s %s" % (printed[1], printed[-1])
    issue = host.file("/etc/issue").content_string.splitlines()
    assert "pre-nixos: ssh root@10.0.2.15" in issue and line in issue, (
        "expected /etc/issue to hold %r, found:\n%s" % (line, "\n".join(issue)))
    last_ssh_line = max(index for index, text in enumerate(issue) if text.startswith("pre-nixos: ssh root@"))
    assert issue.index(line) == last_ssh_line + 1, (
        "expected %r right after the ssh lines in /etc/issue:\n%s" % (line, "\n".join(issue)))
    # The console ends each line with \r\r\n or \r\n: the line is there whole, whatever its ending.
    assert re.search(re.escape(line) + r"\r*\n", serial_log()), "expected the serial console to show %r" % line
    address, port = _ssh_endpoint(host)[:2]
    with socket.create_connection((address, port), timeout=30) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=30)
            presented = transport.get_remote_server_key()
        finally:
            transport.close()
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(presented.asbytes()).digest()).decode().rstrip("=")
    assert (presented.get_name(), fingerprint) == ("ssh-ed25519", printed[1]), (
        "expected sshd to present the key the console shows (%s), it presents %s %s"
        % (printed[1], presented.get_name(), fingerprint))


# ---------------------------------------------------------------- storage


def test_every_planned_filesystem_is_mounted_by_label_under_mnt(host):
    status = first_boot_status(host)["phases"]["storage_apply"]
    assert status["state"] == "done", "expected the storage plan built, found %s" % status
    wanted = planned_mounts(plan(host))
    mounted = {fs["target"]: fs["label"] for fs in flatten_mounts(guest_json(
        host, "findmnt -J -R -o TARGET,SOURCE,FSTYPE,LABEL /mnt")["filesystems"])}
    assert mounted == wanted, "expected under /mnt (target: label) %s, findmnt shows %s" % (wanted, mounted)
    for target, label in wanted.items():
        source = host.check_output("findmnt -n -o SOURCE %s" % target)
        by_label = host.check_output("readlink -f /dev/disk/by-label/%s" % label)
        assert host.check_output("readlink -f %s" % source) == by_label, (
            "expected %s mounted from /dev/disk/by-label/%s (%s), found %s" % (target, label, by_label, source))


def flatten_mounts(filesystems):
    for fs in filesystems:
        yield fs
        yield from flatten_mounts(fs.get("children", []))


def test_the_swap_volume_is_active_by_its_label(host):
    swap = next(lv for lv in plan(host)["logical_volumes"] if lv["filesystem"] == "swap")
    active = host.check_output("swapon --show=NAME --noheadings --raw").split()
    labelled = host.check_output("readlink -f /dev/disk/by-label/%s" % swap["label"])
    assert [host.check_output("readlink -f %s" % name) for name in active] == [labelled], (
        "expected only %s/%s (label %s, %s) as swap, active: %s" % (swap["vg"], swap["name"], swap["label"],
                                                                    labelled, active))
    assert swap["vg"] == "swap", "expected the swap LV in VG swap on the HDD mirror, plan puts it in %s" % swap["vg"]


def test_proc_mdstat_and_mdadm_show_the_planned_arrays(host):
    mdstat = host.file("/proc/mdstat").content_string
    for array in plan(host)["arrays"]:
        detail = dict(line.split("=", 1) for line in host.check_output(
            "mdadm --detail --export /dev/md/%s" % array["name"]).splitlines() if "=" in line)
        found = (detail.get("MD_LEVEL"), int(detail.get("MD_DEVICES", 0)))
        assert found == (array["level"], len(array["devices"])), "expected /dev/md/%s as %s of %d, found %s" % (
            array["name"], array["level"], len(array["devices"]), found)
        assert re.search(r"^md\d+ : active (\(auto-read-only\) )?%s " % array["level"], mdstat, re.M), (
            "expected an active %s in /proc/mdstat:\n%s" % (array["level"], mdstat))
    assert sorted(a["name"] for a in plan(host)["arrays"]) == ["large", "main_1", "swap"], (
        "expected arrays main_1 (SSD RAID0), swap (HDD RAID1), large (HDD RAID5), plan: %s" % plan(host)["arrays"])


def test_volume_groups_and_logical_volumes_are_the_planned_ones(host):
    planned = plan(host)
    vgs = {vg["vg_name"] for vg in guest_json(host, "vgs --reportformat json -o vg_name")["report"][0]["vg"]}
    assert vgs == {vg["name"] for vg in planned["volume_groups"]}, (
        "expected VGs %s, vgs shows %s" % ([vg["name"] for vg in planned["volume_groups"]], sorted(vgs)))
    lvs = {(lv["vg_name"], lv["lv_name"]): int(lv["lv_size"]) for lv in guest_json(
        host, "lvs --reportformat json --units b --nosuffix -o vg_name,lv_name,lv_size")["report"][0]["lv"]}
    wanted = {(lv["vg"], lv["name"]): lv["size"] for lv in planned["logical_volumes"]}
    assert lvs == wanted, "expected LVs (vg, name): bytes %s, lvs shows %s" % (wanted, lvs)


# ---------------------------------------------------------------- NixOS hand-off


def test_the_nixos_configuration_parses_and_names_the_labels_on_the_disks(host, tmp_path):
    text = nixos_configuration(host, tmp_path)
    mounted = set(planned_mounts(plan(host)).values())
    swaps = {lv["label"] for lv in plan(host)["logical_volumes"] if lv["filesystem"] == "swap"}
    on_disks = set(host.check_output("blkid -s LABEL -o value").split())
    assert mounted | swaps <= on_disks, "expected blkid to show the planned labels %s, it shows %s" % (
        sorted(mounted | swaps), sorted(on_disks))
    missing = sorted(label for label in mounted if 'device = "/dev/disk/by-label/%s"' % label not in text)
    missing += sorted(label for label in swaps if 'label = "%s"' % label not in text)
    assert not missing, "expected pre-nixos.nix to mount %s and swap on %s by label, missing: %s" % (
        sorted(mounted), sorted(swaps), missing)


# ---------------------------------------------------------------- SSH, from outside


def test_sshds_effective_settings_are_key_only(host):
    effective = dict(line.split(" ", 1) for line in host.check_output(
        "sshd -T -C user=root,host=localhost,addr=127.0.0.1").splitlines() if " " in line)
    wanted = {"permitrootlogin": "without-password", "passwordauthentication": "no",
              "kbdinteractiveauthentication": "no", "permitemptypasswords": "no",
              "authenticationmethods": "publickey", "maxauthtries": "5", "x11forwarding": "no",
              "allowagentforwarding": "no", "authorizedkeysfile": ".ssh/authorized_keys",
              "authorizedkeyscommand": "none"}
    found = {key: effective.get(key) for key in wanted}
    assert found == wanted, "expected sshd -T to show %s, it shows %s" % (wanted, found)


def test_ssh_audit_finds_no_failure(host):
    address, port = _ssh_endpoint(host)[:2]
    audit = os.path.join(os.path.dirname(sys.executable), "ssh-audit")
    result = subprocess.run([audit, "-n", "-p", str(port), address], capture_output=True, text=True, timeout=120,
                            check=False)
    logs = os.path.join(os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."), "build", "molecule-logs",
                        os.environ.get("MOLECULE_SCENARIO_NAME", "default"))
    os.makedirs(logs, exist_ok=True)
    with open(os.path.join(logs, "ssh-audit.txt"), "w") as handle:
        handle.write(result.stdout + result.stderr)
    failures = [line for line in result.stdout.splitlines() if "[fail]" in line]
    assert "(gen) banner" in result.stdout or "# general" in result.stdout, "ssh-audit did not run:\n%s" % (
        result.stdout + result.stderr)
    assert not failures, "expected no failure-level finding from ssh-audit, found:\n%s" % "\n".join(failures)


def test_the_role_changes_sshd_over_ssh_without_locking_the_operator_out(host, tmp_path):
    playbook = tmp_path / "ssh.yml"
    playbook.write_text(
        "- name: Harden SSH over SSH\n  hosts: all\n  gather_facts: false\n  roles:\n"
        "    - prenixos.baseline.ssh_hardening\n")
    keys = [open(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "build", "id_ed25519.pub")).read().strip()]

    def run(extra):
        variables = json.dumps({"prenixos_ssh_authorized_keys": keys, "prenixos_ssh_extra_settings": extra})
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                   os.environ["MOLECULE_INVENTORY_FILE"], str(playbook), "-e", variables]
        environment = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="True")
        return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=environment)

    changed = run({"MaxAuthTries": 4})
    assert changed.returncode == 0 and re.search(r"changed=[1-9]", changed.stdout), (
        "expected the run that changes MaxAuthTries over SSH to succeed with changes:\n%s" % changed.stdout[-3000:])
    assert "maxauthtries 4" in host.check_output("sshd -T -C user=root,host=localhost,addr=127.0.0.1").splitlines()
    test_the_build_key_logs_in_as_root(host)
    restored = run({})
    assert restored.returncode == 0, "expected the run that restores the defaults to succeed:\n%s" % (
        restored.stdout[-3000:])
    assert "maxauthtries 5" in host.check_output("sshd -T -C user=root,host=localhost,addr=127.0.0.1").splitlines()


def test_first_boot_run_again_in_the_guest_changes_nothing(host):
    # What `systemctl restart pre-nixos` runs, minus the wrapper: the same playbook, locally.
    command = ("env ANSIBLE_COLLECTIONS_PATH=/usr/share/pre-nixos/collections ANSIBLE_PIPELINING=1 ANSIBLE_NOCOLOR=1"
               " /opt/pre-nixos/venv/bin/ansible-playbook prenixos.baseline.first_boot -i localhost, -c local"
               " -e ansible_python_interpreter=/opt/pre-nixos/venv/bin/python")
    result = host.run(command)
    recap = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", result.stdout)
    assert result.rc == 0 and recap, "expected the first-boot playbook to run again:\n%s" % result.stdout[-3000:]
    assert recap.groups() == ("0", "0"), "expected a second run to change nothing:\n%s" % result.stdout[-3000:]
