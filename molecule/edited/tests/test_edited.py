# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's plan: planned with a disk left out by serial, edited, a bad edit refused with every problem
named and nothing touched, the good edit built as edited, and the NixOS configuration matching the disks."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    converge_rounds,
    disks_by_serial,
    first_boot_status,
    guest_disks,
    guest_json,
    nixos_configuration,
    plan,
    planned_mounts,
)

MiB = 1024 ** 2
GiB = 1024 ** 3


def test_first_boot_only_planned(host):
    seen = converge_rounds(host)
    assert any(line.startswith("Storage plan (version 2)") for line in seen["planned"]), seen["planned"]
    assert any("plan written to /var/log/pre-nixos/plan.json" in line for line in seen["planned"]), seen["planned"]


def test_the_third_hdd_was_left_out_by_its_serial_and_never_touched(host):
    left_out = disks_by_serial(host)["pn-hdd3"]
    excluded = {entry["disk"]: entry["reason"] for entry in plan(host)["excluded"]}
    assert "excluded by the operator" in excluded.get(left_out, ""), excluded
    assert left_out not in {disk["name"] for disk in plan(host)["disks"]}
    assert host.check_output("lsblk --noheadings --output NAME /dev/%s" % left_out).split() == [left_out], (
        "expected %s to hold no partition" % left_out)


def test_the_bad_edit_was_refused_with_every_problem_named_and_nothing_touched(host):
    seen = converge_rounds(host)
    text = "\n".join(seen["refused"])
    assert seen["refused_rc"] != 0, text
    for problem in ("array main: raid6 needs at least 4 members, it has 2",
                    "volume group main: raid_level 'raid0', but its PVs are array main (raid6)",
                    "logical volume fast/slash: not a named volume of a planned VG",
                    "volume group main holds about",
                    "a disk is used twice"):
        assert problem in text, "expected the refusal to say %r:\n%s" % (problem, text)
    partitions = [line.split()[-1] for line in seen["after_refusal"] if re.match(r"^\s+\d+\s+\d+\s+\d+\s+\S+$", line)]
    assert not [name for name in partitions if re.match(r"^(sd[a-z]+\d+|md)", name)], (
        "expected no partition and no array after the refusal: %s" % seen["after_refusal"])


def test_check_mode_showed_the_commands_of_the_edited_plan_and_ran_none(host):
    seen = converge_rounds(host)
    text = "\n".join(seen["preview"])
    assert seen["preview_rc"] == 0, text
    flat = " ".join(text.split())  # the YAML callback folds long command lines
    assert re.search(r"mdadm --create /dev/md/main .*?--level=raid1 --raid-devices=2 ", flat), (
        "expected the preview to show main created as RAID1 over two:\n%s" % text)
    assert "lvcreate -L 3758096384b -n slash main --yes" in flat, "expected / at 3.5 GiB:\n%s" % text
    # the partitions read after the preview are checked by the refusal's test: none were made


def test_main_was_built_as_edited_raid1_over_the_two_ssds_with_a_3_5_gib_root(host):
    planned = plan(host)
    main = next(vg for vg in planned["volume_groups"] if vg["name"] == "main")
    ssds = sorted(name for name, kind in guest_disks(host).items() if kind == "ssd")
    assert (main["raid_level"], sorted(main["disks"])) == ("raid1", ssds), main
    detail = host.check_output("mdadm --detail --export /dev/md/main")
    assert "MD_LEVEL=raid1" in detail and "MD_DEVICES=2" in detail, detail
    sizes = {lv["lv_name"]: int(lv["lv_size"].rstrip("B")) for lv in guest_json(
        host, "lvs --reportformat json --units b -o lv_name,lv_size main")["report"][0]["lv"]}
    assert (sizes.get("slash"), sizes.get("home")) == (3584 * MiB, GiB), (
        "expected / as edited (3.5 GiB) and /home as planned (1 GiB): %s" % sizes)
    assert host.check_output("findmnt -n -o LABEL /mnt") == "slash"


def test_the_nixos_configuration_matches_the_disks(host):
    status = first_boot_status(host)
    assert status["phases"]["storage_apply"]["state"] == "done", status["phases"]["storage_apply"]
    text = host.file("/mnt/etc/nixos/pre-nixos.nix").content_string
    labels = planned_mounts(plan(host)).values()
    swaps = [lv["label"] for lv in plan(host)["logical_volumes"] if lv["filesystem"] == "swap"]
    missing = [label for label in labels if 'device = "/dev/disk/by-label/%s"' % label not in text]
    missing += [label for label in swaps if 'label = "%s"' % label not in text]
    assert not missing, "expected pre-nixos.nix to mount every planned label, missing: %s" % missing
    assert "swraid" in text and "/home" in text, "expected the arrays and /home in pre-nixos.nix:\n%s" % text


def test_pre_nixos_status_says_the_edited_plan_is_built(host):
    lines = converge_rounds(host)["status"]
    assert any(re.match(r"^\s*storage_plan\s+done\s.*the operator's plan, checked against the disks", line)
               for line in lines), lines
    # the last apply found the edited plan built: nothing to do
    assert any(re.match(r"^\s*storage_apply\s+done\s.*already built, nothing to do", line) for line in lines), lines


def test_building_the_edited_plan_again_changed_nothing(host):
    again = "\n".join(converge_rounds(host)["again"])
    recap = re.findall(r"changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", again)
    assert recap and recap[-1] == ("0", "0"), "expected a run that changed nothing:\n%s" % again


# ---------------------------------------------------------------- the static address


def test_lan_has_the_static_address_of_the_kernel_command_line_and_asked_no_dhcp(host):
    (lan,) = guest_json(host, "ip -j -4 addr show dev lan")
    addresses = [(a["local"], a["prefixlen"], bool(a.get("dynamic"))) for a in lan["addr_info"]
                 if a.get("family") == "inet"]
    assert addresses == [("10.0.2.50", 24, False)], "expected only the static 10.0.2.50/24 on lan, found %s" % addresses
    routes = guest_json(host, "ip -j -4 route show default dev lan")
    gateways = [route.get("gateway") for route in routes]
    assert gateways == ["10.0.2.2"], "expected the default route via 10.0.2.2: %s" % routes
    network = host.file("/etc/systemd/network/10-lan.network").content_string
    for line in ("DHCP=no", "Address=10.0.2.50/24", "Gateway=10.0.2.2", "DNS=10.0.2.3"):
        assert line in network.splitlines(), "expected %r in 10-lan.network:\n%s" % (line, network)
    # networkd keeps a lease file for each DHCPv4 lease it holds: there is none.
    leases = host.run("ls /run/systemd/netif/leases/").stdout.split()
    assert leases == [], "expected no DHCP lease on the machine, found %s" % leases
    dns = host.check_output("resolvectl dns lan")
    assert "10.0.2.3" in dns, "expected resolved to use the static DNS server on lan: %s" % dns


def test_the_lan_phase_records_the_static_settings_and_the_operator_is_told_the_static_address(host):
    details = first_boot_status(host)["phases"]["lan"]["details"]
    assert (details["address"], details["settings"]) == (
        "10.0.2.50", {"addresses": ["10.0.2.50/24"], "gateways": ["10.0.2.2"], "dns": ["10.0.2.3"], "vlan": None}
    ), "expected the lan phase to record the static settings, found %s" % details
    issue = host.file("/etc/issue").content_string
    assert "pre-nixos: ssh root@10.0.2.50" in issue, "expected /etc/issue to say ssh root@10.0.2.50:\n%s" % issue


def test_sshd_listens_on_ipv4_and_ipv6(host):
    listening = {line.split()[3] for line in host.check_output("ss -Hltn sport = :22").splitlines()}
    assert {"0.0.0.0:22", "[::]:22"} <= listening, "expected sshd on 0.0.0.0:22 and [::]:22, found %s" % listening


def test_the_nixos_configuration_parses_and_carries_the_static_address(host, tmp_path):
    text = nixos_configuration(host, tmp_path)
    for expected in ('"10.0.2.50/24"', '"10.0.2.2"', '"10.0.2.3"'):
        assert expected in text, "expected pre-nixos.nix to name %s:\n%s" % (expected, text)
    assert re.search(r'DHCP = "no"', text), "expected pre-nixos.nix to turn DHCP off on lan:\n%s" % text
