"""The lan module with a VLAN: the NIC becomes lan-port and carries the tagged lan (fake machine and networkd)."""

from __future__ import annotations

import pytest
from test_lan import APPLY, LAN_NETWORK, World, lan_link, only_mutations, rename, up

HEADER = "# Managed by prenixos.baseline.lan; changes are overwritten.\n"
PORT_NETWORK = (
    HEADER + "[Match]\nName=lan-port\n\n[Network]\nVLAN=lan\nLinkLocalAddressing=no\nIPv6AcceptRA=no\nDHCP=no\n"
)
STATIC_V4_V6 = (
    HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=no\nAddress=192.0.2.10/24\nAddress=2001:db8::10/64\n"
    "Gateway=192.0.2.1\nIPv6AcceptRA=no\n"
)
APPLY_PORT = [["networkctl", "reload"], ["networkctl", "reconfigure", "lan-port"]]
DELETE_VLAN = [["ip", "link", "delete", "dev", "lan"]]


def netdev(vlan):
    return HEADER + "[NetDev]\nName=lan\nKind=vlan\n\n[VLAN]\nId=%d\n" % vlan


def port_link(match, original, driver="e1000", bus="0000:00:05.0"):
    return lan_link(match, original, driver, bus).replace("Name=lan\n", "Name=lan-port\n")


ENS5 = "PermanentMACAddress=52:54:00:12:34:58"


@pytest.fixture
def world(tmp_path, monkeypatch, capsys):
    return lambda fixture: World(tmp_path, monkeypatch, capsys, fixture)


def vlan_files(vlan, network=LAN_NETWORK):
    return {
        "10-lan-port.link": port_link(ENS5, "ens5"),
        "10-lan-port.network": PORT_NETWORK,
        "10-lan.netdev": netdev(vlan),
        "10-lan.network": network,
    }


def test_a_vlan_with_dhcp_names_the_nic_lan_port_and_the_lease_comes_on_the_tagged_lan(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    result = w.run(vlan=42)
    assert result["changed"] is True, result
    assert w.files() == vlan_files(42)
    assert w.mutations() == [up("ens3"), up("ens4"), up("ens5")] + rename("ens5", "lan-port") + APPLY_PORT
    assert sorted(w.box.nics) == ["ens3", "ens4", "lan-port"]
    assert {name: (vlan["id"], vlan["parent"]) for name, vlan in w.box.vlans.items()} == {"lan": (42, "lan-port")}
    assert "lan-port" not in w.box.config or w.box.config["lan-port"]["addresses"] == []
    assert (result["name"], result["original_name"], result["address"]) == ("lan", "ens5", "10.0.2.15")
    assert result["settings"] == {"addresses": [], "gateways": [], "dns": [], "vlan": 42}
    assert result["msg"] == "ssh root@10.0.2.15 (lan is VLAN 42 over lan-port, ens5 52:54:00:12:34:58)"
    assert w.issue.read_text().endswith(
        "pre-nixos: ssh root@10.0.2.15\npre-nixos: lan DHCP 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3"
        " on lan (VLAN 42 over lan-port, 52:54:00:12:34:58, was ens5)\n\n"
    )


def test_a_vlan_with_static_addresses_and_its_second_run_changes_nothing(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    settings = {"vlan": "7", "address": ["192.0.2.10/24", "2001:db8::10/64"], "gateway": ["192.0.2.1"]}
    first = w.run(**settings)
    assert w.files() == vlan_files(7, STATIC_V4_V6)
    assert (first["address"], first["address6"], first["gateway"]) == ("192.0.2.10", "2001:db8::10", "192.0.2.1")
    assert first["msg"] == (
        "ssh root@192.0.2.10 or root@2001:db8::10 (lan is VLAN 7 over lan-port, ens5 52:54:00:12:34:58; static)"
    )
    files, issue = w.files(), w.issue.read_text()
    second = w.run(diff=True, **settings)
    assert (second["changed"], second["commands"], second["diff"]) == (False, [], [])
    assert w.mutations() == [] and (w.files(), w.issue.read_text()) == (files, issue)
    assert second["msg"] == first["msg"] and second["original_name"] == "ens5"


def test_a_second_vlan_run_with_dhcp_changes_nothing(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    first = w.run(vlan=42)
    second = w.run(vlan=42)
    assert (second["changed"], w.mutations()) == (False, [])
    assert {key: second[key] for key in ("address", "gateway", "dns", "original_name", "msg")} == {
        key: first[key] for key in ("address", "gateway", "dns", "original_name", "msg")
    }


def test_asking_for_a_vlan_renames_lan_to_lan_port_and_dropping_it_renames_it_back(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run()
    assert sorted(w.files()) == ["10-lan.link", "10-lan.network"]

    tagged = w.run(vlan=42, diff=True)
    assert w.mutations() == rename("lan", "lan-port") + APPLY_PORT
    assert w.files() == vlan_files(42)  # 10-lan.link is gone; the kernel name is kept in 10-lan-port.link
    assert tagged["files"][str(w.live_dir / "10-lan.link")] is None
    assert [d["after"] for d in tagged["diff"] if d["before_header"].endswith("10-lan.link")] == [""]
    assert (tagged["original_name"], tagged["address"]) == ("ens5", "10.0.2.15")
    assert sorted(w.box.vlans) == ["lan"]

    # The VLAN holds the name lan: it goes first, or the NIC could not take the name back.
    untagged = w.run()
    assert w.mutations() == DELETE_VLAN + rename("lan-port", "lan") + APPLY
    assert w.files() == {"10-lan.link": lan_link(ENS5, "ens5"), "10-lan.network": LAN_NETWORK}
    assert (untagged["original_name"], untagged["address"], w.box.vlans) == ("ens5", "10.0.2.15", {})
    assert sorted(w.box.nics) == ["ens3", "ens4", "lan"]
    assert w.run()["changed"] is False


def test_another_vlan_id_deletes_the_old_vlan_and_networkd_makes_the_new_one(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run(vlan=42)
    result = w.run(vlan=43)
    assert w.mutations() == DELETE_VLAN + APPLY_PORT
    assert w.files() == vlan_files(43)
    assert (w.box.vlans["lan"]["id"], result["address"]) == (43, "10.0.2.15")


def test_a_changed_address_on_a_kept_vlan_reconfigures_the_vlan_itself(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run(vlan=42)
    result = w.run(vlan=42, address=["192.0.2.10/24"])
    assert w.mutations() == APPLY_PORT + [["networkctl", "reconfigure", "lan"]]
    assert result["address"] == "192.0.2.10"


def test_files_someone_else_wrote_under_the_other_names_are_kept(world):
    w = world("host_kvm")
    w.live_dir.mkdir(parents=True)
    foreign = "[Match]\nName=lan-port\n\n[Network]\nDHCP=yes\n"
    (w.live_dir / "10-lan-port.network").write_text(foreign)
    w.run()
    assert w.files()["10-lan-port.network"] == foreign


def test_check_mode_asking_for_a_vlan_reports_the_rename_and_the_files_and_changes_nothing(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run()
    files = w.files()
    result = w.run(check_mode=True, vlan=42)
    assert (result["changed"], result["commands"]) == (True, rename("lan", "lan-port") + APPLY_PORT)
    assert result["files"] == dict(
        {str(w.live_dir / name): text for name, text in vlan_files(42).items()},
        **{str(w.live_dir / "10-lan.link"): None},
    )
    assert (
        result["msg"]
        == "would name ens5 (52:54:00:12:34:58) lan-port, put lan on VLAN 42 over it and ask DHCP for an address"
    )
    assert only_mutations(w.new_calls()) == [] and w.files() == files and w.box.vlans == {}


def test_another_root_gets_the_vlan_files_and_no_live_link_is_touched(world, tmp_path):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run()
    target = tmp_path / "mnt" / "etc" / "systemd" / "network"
    result = w.run(
        root=str(tmp_path / "mnt"), vlan=42, address=["192.0.2.10/24", "2001:db8::10/64"], gateway=["192.0.2.1"]
    )
    assert w.files(target) == vlan_files(42, STATIC_V4_V6)
    assert only_mutations(w.new_calls()) == [] and result["commands"] == []
    assert sorted(w.box.nics) == ["ens3", "ens4", "lan"] and w.box.vlans == {}
    assert result["msg"] == "files for lan (VLAN 42 over lan-port, 52:54:00:12:34:58, was ens5) under %s" % (
        tmp_path / "mnt"
    )
    again = w.run(
        root=str(tmp_path / "mnt"), vlan=42, address=["192.0.2.10/24", "2001:db8::10/64"], gateway=["192.0.2.1"]
    )
    assert again["changed"] is False


def test_a_vlan_lan_over_another_nic_is_replaced_by_the_one_over_lan_port(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run(vlan=42)
    w.box.vlans["lan"]["parent"] = "ens3"  # made again by hand over another port, with the same ID
    result = w.run(vlan=42)
    assert w.mutations() == DELETE_VLAN + APPLY_PORT
    assert (w.box.vlans["lan"]["parent"], result["address"]) == ("lan-port", "10.0.2.15")


def test_an_earlier_choice_under_the_vlan_blocks_another_nic_and_its_vlan_is_left_alone(world):
    w = world("qemu_three_nics")
    w.box.plug("ens3")
    w.run(vlan=42)
    w.box.nics["lan-port"]["cable"] = False  # the cable moved to ens4, and the lease is gone
    w.box.sync("lan-port")
    w.box.config.clear()
    w.box.plug("ens4")
    result = w.run(carrier_timeout=2)
    assert result["failed"] is True
    assert result["msg"] == (
        "cannot name ens4 lan: lan-port (52:54:00:12:34:56, operstate down, carrier 0) already has the name lan-port"
        " (an earlier choice); reboot to choose again"
    )
    assert w.mutations() == []  # every NIC is up from the first run; nothing renamed, no VLAN deleted
    assert sorted(w.box.vlans) == ["lan"] and sorted(w.box.nics) == ["ens4", "ens5", "lan-port"]
