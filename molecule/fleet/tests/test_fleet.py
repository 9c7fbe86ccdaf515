# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every machine of the fleet reached the baseline through provision.yml, none through first boot; fleet2's lan
is on a tagged VLAN whose only DHCP server is fleet3, fleet1's has a static address on a wire without DHCP
(fleet3 reaches it there by SSH), and their NixOS configurations carry the same settings."""
from __future__ import annotations

import ipaddress
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    boot_medium,
    firmware,
    first_boot_status,
    guest_json,
    nixos_configuration,
    scenario_machine,
)

# fleet2's NIC on the wire to fleet3, which serves DHCP on VLAN 42 of it.
WIRE_MAC = "52:54:00:02:00:11"
VLAN_NETWORK = ipaddress.ip_network("192.168.42.0/24")
# fleet1's NIC on the wire to fleet3, where nothing serves DHCP.
STATIC_WIRE_MAC = "52:54:00:01:00:11"


def test_first_boot_did_nothing_and_provisioning_did_everything(host):
    status = first_boot_status(host)
    found = {name: phase["state"] for name, phase in status["phases"].items()}
    assert found == {"ssh": "done", "lan": "done", "storage_plan": "done", "storage_apply": "done",
                     "nixos_config": "done", "nixos_install": "skipped"}, "expected every phase provisioned: %s" % found
    assert "prenixos.firstboot=0" in host.file("/proc/cmdline").content_string


def test_each_machine_booted_as_its_platform_says_and_provisioning_left_its_medium_alone(host):
    name = host.backend.get_hostname()
    machine = scenario_machine(name)
    assert firmware(host) == machine.get("firmware", "uefi"), "expected %s to boot %s, it says %s" % (
        name, machine.get("firmware", "uefi"), firmware(host))
    if machine.get("boot", "cdrom") != "cdrom":
        medium = boot_medium(host, name)
        assert medium["name"] and "boot medium" in (medium["excluded"] or ""), (
            "expected %s's image disk excluded from the plan as the boot medium: %s" % (name, medium))
        assert medium["unchanged"], "expected %s's image disk to hold the image byte for byte: %s" % (name, medium)


def lan_addresses(host):
    (lan,) = guest_json(host, "ip -j -4 addr show dev lan")
    return [a["local"] for a in lan["addr_info"] if a.get("family") == "inet"]


def test_each_machine_has_lan_and_its_root_mounted_by_label(host):
    addresses = lan_addresses(host)
    if host.backend.get_hostname() == "fleet2":
        assert len(addresses) == 1 and ipaddress.ip_address(addresses[0]) in VLAN_NETWORK, (
            "expected fleet2's lan with a lease of VLAN 42 (192.168.42.0/24): %s" % addresses
        )
    elif host.backend.get_hostname() == "fleet1":
        assert addresses == ["192.168.7.10"], "expected fleet1's lan with its static address: %s" % addresses
    else:
        assert addresses == ["10.0.2.15"], "expected lan with its DHCP address: %s" % addresses
    assert host.check_output("findmnt -n -o LABEL /mnt") == "slash", "expected / of the plan at /mnt"


@pytest.fixture()
def on_vlan(host):
    """fleet2, the machine provisioned onto VLAN 42; the others are checked above."""
    if host.backend.get_hostname() != "fleet2":
        pytest.skip("only fleet2's lan is on the VLAN")
    return host


def test_the_nic_on_the_wire_is_lan_port_and_lan_is_vlan_42_on_it(on_vlan):
    (port,) = guest_json(on_vlan, "ip -j -d link show dev lan-port")
    assert (port.get("address"), port.get("linkinfo")) == (WIRE_MAC, None), (
        "expected lan-port to be the NIC on the wire itself: %s" % port
    )
    assert on_vlan.file("/sys/class/net/lan-port/device").exists, "expected lan-port to be a physical NIC"
    (lan,) = guest_json(on_vlan, "ip -j -d link show dev lan")
    info = lan.get("linkinfo", {})
    found = (info.get("info_kind"), info.get("info_data", {}).get("id"), lan.get("link"))
    assert found == ("vlan", 42, "lan-port"), "expected lan to be VLAN 42 over lan-port: %s" % lan
    netdev = on_vlan.file("/etc/systemd/network/10-lan.netdev").content_string
    assert "Kind=vlan" in netdev and "Id=42" in netdev, "expected 10-lan.netdev to make VLAN 42:\n%s" % netdev


def test_the_lease_came_from_the_only_dhcp_server_on_vlan_42_and_nothing_untagged_answered(on_vlan):
    assert on_vlan.run("ping -c 1 -W 5 192.168.42.1").rc == 0, "expected fleet3 to answer on VLAN 42"
    # ip prints no entry for a link without an address of the family asked for.
    port = guest_json(on_vlan, "ip -j -4 addr show dev lan-port")
    assert port == [] or port[0].get("addr_info") == [], "expected no IPv4 address on lan-port: %s" % port


def test_the_lan_phase_and_the_operator_say_vlan_42(on_vlan):
    details = first_boot_status(on_vlan)["phases"]["lan"]["details"]
    assert (details["name"], details["settings"]["vlan"]) == ("lan", 42), details
    issue = on_vlan.file("/etc/issue").content_string
    assert "pre-nixos: ssh root@%s" % lan_addresses(on_vlan)[0] in issue, issue
    assert "VLAN 42 over lan-port, %s" % WIRE_MAC in issue, "expected the lan line to name the VLAN:\n%s" % issue


def test_the_nixos_configuration_parses_and_brings_lan_up_on_vlan_42(on_vlan, tmp_path):
    text = nixos_configuration(on_vlan, tmp_path)
    for expected in (r'Kind = "vlan"', r"Id = 42;", r'Name = "lan-port"', r'VLAN = \[\s*"lan"\s*\]', WIRE_MAC):
        assert re.search(expected, text), "expected pre-nixos.nix to hold %s:\n%s" % (expected, text)


def test_fleet1_has_its_static_address_on_the_wire_without_dhcp_and_fleet3_reaches_it_there_by_ssh(host):
    name = host.backend.get_hostname()
    if name == "fleet1":
        (lan,) = guest_json(host, "ip -j link show dev lan")
        assert lan.get("address") == STATIC_WIRE_MAC, "expected lan to be the NIC on the wire to fleet3: %s" % lan
        network = host.file("/etc/systemd/network/10-lan.network").content_string.splitlines()
        for line in ("DHCP=no", "Address=192.168.7.10/24", "Gateway=192.168.7.1", "DNS=192.168.7.1"):
            assert line in network, "expected %r in 10-lan.network: %s" % (line, network)
        details = first_boot_status(host)["phases"]["lan"]["details"]
        assert details["settings"]["addresses"] == ["192.168.7.10/24"], details
    elif name == "fleet3":
        reached = host.run(
            "ssh -i /root/.ssh/fleet_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            " -o ConnectTimeout=20 root@192.168.7.10 cat /sys/class/net/lan/address"
        )
        assert (reached.rc, reached.stdout.strip()) == (0, STATIC_WIRE_MAC), (
            "expected fleet3 to reach fleet1 by SSH on 192.168.7.10: %s %s" % (reached.stdout, reached.stderr)
        )
    else:
        pytest.skip("fleet2 is on the VLAN")


def test_fleet1s_nixos_configuration_parses_and_carries_its_static_address(host, tmp_path):
    if host.backend.get_hostname() != "fleet1":
        pytest.skip("only fleet1 has a static address")
    text = nixos_configuration(host, tmp_path)
    for expected in ('"192.168.7.10/24"', '"192.168.7.1"', 'DHCP = "no"', STATIC_WIRE_MAC):
        assert expected in text, "expected pre-nixos.nix to hold %s:\n%s" % (expected, text)
