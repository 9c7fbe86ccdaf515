"""The lan module with the operator's static addresses, and with settings that cannot be used (fake machine)."""

from __future__ import annotations

import pytest
from test_lan import APPLY, DEBIAN_ISSUE, LAN_NETWORK, World, lan_link, rename

HEADER = "# Managed by prenixos.baseline.lan; changes are overwritten.\n"
STATIC_V4 = (
    HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=no\nAddress=192.0.2.10/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n"
    "IPv6AcceptRA=yes\n"
)
STATIC_V4_V6 = (
    HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=no\nAddress=192.0.2.10/24\nAddress=2001:db8::10/64\n"
    "Gateway=192.0.2.1\nGateway=2001:db8::1\nIPv6AcceptRA=no\n"
)
ETH0_LINK = lan_link("PermanentMACAddress=02:fc:00:00:00:01", "eth0", driver="virtio_net", bus="virtio2")
FACTS = ("name", "original_name", "mac", "address", "prefix", "network", "gateway", "dns", "address6", "prefix6")


@pytest.fixture
def world(tmp_path, monkeypatch, capsys):
    return lambda fixture: World(tmp_path, monkeypatch, capsys, fixture)


def facts(result):
    return {key: result.get(key) for key in FACTS}


def test_a_static_ipv4_address_is_configured_without_dhcp_and_waited_for(world):
    w = world("host_kvm")
    # A router on the wire: with a static IPv4 address only, IPv6 router advertisements are still taken.
    w.box.ra = {"delay": 30, "address": "2001:db8::fc:ff:fe00:1/64"}
    result = w.run(address=["192.0.2.10/24"], gateway=["192.0.2.1"], dns=["192.0.2.53"])
    assert result["changed"] is True, result
    assert w.files() == {"10-lan.link": ETH0_LINK, "10-lan.network": STATIC_V4}
    assert w.mutations() == rename("eth0") + APPLY
    assert facts(result) == {
        "name": "lan",
        "original_name": "eth0",
        "mac": "02:fc:00:00:00:01",
        "address": "192.0.2.10",
        "prefix": 24,
        "network": "192.0.2.0/24",
        "gateway": "192.0.2.1",
        "dns": ["192.0.2.53"],
        "address6": None,
        "prefix6": None,
    }
    assert result["settings"] == {
        "addresses": ["192.0.2.10/24"],
        "gateways": ["192.0.2.1"],
        "dns": ["192.0.2.53"],
        "vlan": None,
    }
    # Done once the address is there (1 s): no DHCP lease and no IPv6 address is waited for.
    assert w.box.now == 1
    assert result["msg"] == "ssh root@192.0.2.10 (lan is eth0 02:fc:00:00:00:01; static)"
    lines = [
        "pre-nixos: ssh root@192.0.2.10",
        "pre-nixos: lan static 192.0.2.10/24 gateway 192.0.2.1 dns 192.0.2.53 on lan (02:fc:00:00:00:01, was eth0)",
    ]
    assert w.issue.read_text() == DEBIAN_ISSUE + "\n".join(lines) + "\n\n"
    assert w.console_text() == ["".join(line + "\r\n" for line in lines)] * 2


def test_static_ipv4_and_ipv6_addresses_from_one_kernel_switch_string_are_both_awaited(world):
    w = world("host_kvm")
    w.box.ra = {"delay": 1, "address": "2001:db8::fc:ff:fe00:1/64"}
    result = w.run(address="192.0.2.10/24,2001:DB8::10/64", gateway="192.0.2.1, 2001:db8::1")
    assert w.files()["10-lan.network"] == STATIC_V4_V6
    assert (result["address"], result["address6"], result["prefix6"]) == ("192.0.2.10", "2001:db8::10", 64)
    # The IPv6 address is tentative for 1 s after it is set (duplicate address detection): 1 + 1 s.
    assert w.box.now == 2
    assert result["msg"] == "ssh root@192.0.2.10 or root@2001:db8::10 (lan is eth0 02:fc:00:00:00:01; static)"
    assert w.issue.read_text().endswith(
        "pre-nixos: ssh root@192.0.2.10\npre-nixos: ssh root@2001:db8::10\n"
        "pre-nixos: lan static 192.0.2.10/24 2001:db8::10/64 gateway 192.0.2.1 on lan (02:fc:00:00:00:01, was eth0)\n\n"
    )


def test_a_static_address_that_never_settles_fails_after_dhcp_timeout_and_says_which(world):
    w = world("host_kvm")
    w.box.DAD_DELAY = 1000  # another machine answers for the address: it stays tentative
    result = w.run(address=["192.0.2.10/24", "2001:db8::10/64"], dhcp_timeout=7)
    assert result["failed"] is True
    assert result["msg"] == (
        "link lan (02:fc:00:00:00:01, was eth0) is up, but 2001:db8::10/64 not on it after 7 s"
        " (another machine with the address?)"
    )
    assert 7 <= w.box.now < 9
    assert "pre-nixos: network not configured: link lan (02:fc:00:00:00:01, was eth0) is up" in w.issue.read_text()


def test_a_second_static_run_changes_nothing_and_a_new_address_is_applied_without_renaming(world):
    w = world("host_kvm")
    settings = {"address": ["192.0.2.10/24"], "gateway": ["192.0.2.1"], "dns": ["192.0.2.53"]}
    first = w.run(**settings)
    files, issue = w.files(), w.issue.read_text()
    second = w.run(diff=True, **settings)
    assert (second["changed"], second["commands"], second["diff"]) == (False, [], [])
    assert w.mutations() == []
    assert facts(second) == facts(first) and (w.files(), w.issue.read_text()) == (files, issue)

    moved = w.run(address=["192.0.2.20/24"])
    assert w.mutations() == APPLY
    assert "Address=192.0.2.20/24\n" in w.files()["10-lan.network"]
    assert (moved["address"], moved["gateway"], moved["dns"]) == ("192.0.2.20", None, [])


def test_from_dhcp_to_static_and_back_only_the_network_file_changes(world):
    w = world("host_kvm")
    w.run()
    static = w.run(address=["192.0.2.10/24"], gateway=["192.0.2.1"], dns=["192.0.2.53"])
    assert w.mutations() == APPLY and static["address"] == "192.0.2.10"
    assert w.files() == {"10-lan.link": ETH0_LINK, "10-lan.network": STATIC_V4}
    dhcp = w.run()
    assert w.mutations() == APPLY and dhcp["address"] == "10.0.2.15"
    assert w.files() == {"10-lan.link": ETH0_LINK, "10-lan.network": LAN_NETWORK}
    assert w.run()["changed"] is False


def test_check_mode_with_a_static_address_says_what_it_would_do(world):
    w = world("host_kvm")
    result = w.run(check_mode=True, address=["192.0.2.10/24"], gateway=["192.0.2.1"], dns=["192.0.2.53"])
    assert (result["changed"], result["commands"]) == (True, rename("eth0") + APPLY)
    assert result["files"][str(w.live_dir / "10-lan.network")] == STATIC_V4
    assert result["msg"] == "would name eth0 (02:fc:00:00:00:01) lan and give it 192.0.2.10/24"
    assert w.mutations() == [] and w.files() == {} and w.issue.read_text() == DEBIAN_ISSUE


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (
            {"address": ["192.0.2.10/24"], "gateway": ["198.51.100.1"]},
            "the gateway 198.51.100.1 is outside the network 192.0.2.0/24 of the address 192.0.2.10/24",
        ),
        (
            {"address": "192.0.2.10/24,192.0.2.11/24"},
            "more than one IPv4 address given (192.0.2.10/24, 192.0.2.11/24): give one per IP version",
        ),
        (
            {"address": ["192.0.2.10"]},
            "the address '192.0.2.10' has no prefix length: give it as ADDR/PREFIX, like 192.0.2.10/24 or"
            " 2001:db8::10/64",
        ),
        (
            {"gateway": ["192.0.2.1"]},
            "the gateway 192.0.2.1 needs a static IPv4 address on lan to be reached through",
        ),
        ({"dns": ["resolver.example"]}, "the DNS server 'resolver.example' is not an IPv4 or IPv6 address"),
        ({"vlan": 4095}, "the VLAN ID 4095 is not a number from 1 to 4094"),
        ({"vlan": "ten"}, "the VLAN ID 'ten' is not a number from 1 to 4094"),
        (
            {"mac": "52:54:00:12:34"},
            "'52:54:00:12:34' is not a MAC address (six hex pairs, like 52:54:00:12:34:56,"
            " 52-54-00-12-34-56 or 5254.0012.3456)",
        ),
    ],
)
def test_a_setting_that_cannot_be_used_fails_before_anything_is_looked_at_and_is_announced(world, settings, reason):
    w = world("qemu_three_nics")
    w.box.plug("ens4")
    result = w.run(**settings)
    assert (result["failed"], result["msg"], result["settings_refused"]) == (True, reason, True)
    assert "settings" not in result and result["commands"] == []
    assert w.new_calls() == [], "expected no command at all, found %s" % w.new_calls()
    assert w.files() == {} and sorted(w.box.nics) == ["ens3", "ens4", "ens5"]
    # Retrying would fail the same way: the operator is told to correct the setting instead.
    lines = ["pre-nixos: network not configured: %s" % reason,
             "pre-nixos: network: nothing was changed; correct the setting (kernel switch or variable) and run again"]
    assert w.issue.read_text() == DEBIAN_ISSUE + "\n".join(lines) + "\n\n"
    assert w.console_text() == ["".join(line + "\r\n" for line in lines)] * 2
