"""The lan module against a fake machine (fake sysfs, fake ip/networkctl/systemctl, fake clock): see test_nic_facts."""

from __future__ import annotations

import pytest
from ansible.module_utils.basic import AnsibleModule
from module_harness import run_module
from test_nic_facts import FakeMachine, fake_get_bin_path

from ansible_collections.prenixos.baseline.plugins.modules import lan

DEBIAN_ISSUE = "Debian GNU/Linux 12 \\n \\l\n\n"
LAN_NETWORK = """\
# Managed by prenixos.baseline.lan; changes are overwritten.
[Match]
Name=lan

[Network]
DHCP=yes
IPv6AcceptRA=yes

[DHCPv4]
ClientIdentifier=mac
"""


def lan_link(match, original, driver="e1000", bus="0000:00:05.0"):
    return (
        "# Managed by prenixos.baseline.lan; changes are overwritten.\n"
        "# First boot found the link on %s (driver %s, bus %s).\n"
        "[Match]\n%s\n\n[Link]\nName=lan\n" % (original, driver, bus, match)
    )


def up(name):
    return ["ip", "link", "set", "dev", name, "up"]


def rename(old, new="lan"):
    return [["ip", "link", "set", "dev", old, "down"], ["ip", "link", "set", "dev", old, "name", new], up(new)]


APPLY = [["networkctl", "reload"], ["networkctl", "reconfigure", "lan"]]


class World:
    """A fake machine plus the paths the module writes to, all in tmp_path."""

    def __init__(self, tmp_path, monkeypatch, capsys, fixture):
        self.box = FakeMachine(tmp_path / "machine", fixture, monkeypatch)
        self.live_dir = tmp_path / "etc" / "systemd" / "network"
        # The fake networkd configures the links by the files the module writes.
        self.box.network_dir = self.live_dir
        self.capsys = capsys
        self.issue = tmp_path / "etc" / "issue"
        self.issue.parent.mkdir(parents=True, exist_ok=True)
        self.issue.write_text(DEBIAN_ISSUE)
        self.consoles = [tmp_path / "dev" / "tty1", tmp_path / "dev" / "ttyS0"]
        self.consoles[0].parent.mkdir()
        for console in self.consoles:
            console.write_text("")
        self.systemd_run_dir = tmp_path / "run" / "systemd" / "system"
        self.systemd_run_dir.mkdir(parents=True)
        monkeypatch.setattr(lan, "Runner", lambda module: self.box.runner)
        monkeypatch.setattr(lan, "time", self.box)
        monkeypatch.setattr(lan, "LIVE_NETWORK_DIR", str(self.live_dir))
        monkeypatch.setattr(lan, "SYSFS_ROOT", str(self.box.sysfs))
        monkeypatch.setattr(lan, "SYSTEMD_RUN_DIR", str(self.systemd_run_dir))
        # No host key unless a test makes one: the machine's own is never read.
        self.host_key = tmp_path / "etc" / "ssh" / "ssh_host_ed25519_key.pub"
        monkeypatch.setattr(lan, "HOST_KEY_PATH", str(self.host_key))
        monkeypatch.setattr(AnsibleModule, "get_bin_path", fake_get_bin_path)

    def args(self, **extra):
        args = {
            "issue_path": str(self.issue),
            "consoles": [str(console) for console in self.consoles] + [str(self.consoles[0].parent / "missing")],
            "failure_hint": "retrying every 30 s",
        }
        args.update(extra)
        return args

    def run(self, check_mode=False, diff=False, **extra):
        self.calls_before = len(self.box.runner.calls)
        return run_module(lan.main, self.args(**extra), self.capsys, check_mode=check_mode, diff=diff)

    def mutations(self):
        """The changing commands of the last run."""
        return self.box.mutations(self.new_calls())

    def new_calls(self):
        return self.box.runner.calls[self.calls_before :]

    def files(self, directory=None):
        directory = directory or self.live_dir
        return {path.name: path.read_text() for path in sorted(directory.iterdir())} if directory.exists() else {}

    def console_text(self):
        return [console.read_bytes().decode() for console in self.consoles]


@pytest.fixture
def world(tmp_path, monkeypatch, capsys):
    return lambda fixture: World(tmp_path, monkeypatch, capsys, fixture)


def lease_result(result):
    keys = ("name", "original_name", "mac", "permanent_mac", "address", "prefix", "network", "gateway", "dns")
    return {key: result.get(key) for key in keys}


def only_mutations(calls):
    return [c for c in calls if c[:3] == ["ip", "link", "set"] or c[0] == "networkctl" and c[1] != "status"]


# ---------------------------------------------------------------- picking and renaming


def test_the_nic_whose_cable_comes_in_after_20_s_becomes_lan(world):
    w = world("qemu_three_nics")
    w.box.at(20, lambda: w.box.plug("ens5"))
    result = w.run()
    assert result["changed"] is True, result
    assert lease_result(result) == {
        "name": "lan",
        "original_name": "ens5",
        "mac": "52:54:00:12:34:58",
        "permanent_mac": "52:54:00:12:34:58",
        "address": "10.0.2.15",
        "prefix": 24,
        "network": "10.0.2.0/24",
        "gateway": "10.0.2.2",
        "dns": ["10.0.2.3"],
    }
    assert w.mutations() == [up("ens3"), up("ens4"), up("ens5")] + rename("ens5") + APPLY
    assert result["commands"] == w.mutations()
    assert sorted(w.box.nics) == ["ens3", "ens4", "lan"]
    assert w.files() == {
        "10-lan.link": lan_link("PermanentMACAddress=52:54:00:12:34:58", "ens5"),
        "10-lan.network": LAN_NETWORK,
    }
    # The lease 3 s after the cable, then ipv6_timeout (5 s) for an IPv6 address no router advertises here.
    assert 20 + 3 + 5 <= w.box.now <= 20 + 3 + 5 + 2


def test_several_with_a_link_the_fastest_wins_and_usb_comes_last(world):
    w = world("server_mixed")
    for name in ("eno1", "ens1f0", "enp0s20f0u1u6"):
        w.box.plug(name)
    result = w.run()
    assert (result["original_name"], result["mac"]) == ("ens1f0", "a0:36:9f:00:00:02")
    assert w.files()["10-lan.link"] == lan_link(
        "PermanentMACAddress=a0:36:9f:00:00:02", "ens1f0", driver="ixgbe", bus="0000:3b:00.0"
    )


def test_equal_links_go_by_bus_order(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.box.plug("ens4")
    assert w.run()["original_name"] == "ens4"


def test_the_link_file_matches_the_permanent_mac_when_the_address_was_changed(world):
    w = world("server_mixed")
    w.box.plug("ens1f1")
    result = w.run()
    assert (result["original_name"], result["mac"], result["permanent_mac"]) == (
        "ens1f1",
        "02:11:22:33:44:55",
        "a0:36:9f:00:00:03",
    )
    assert "PermanentMACAddress=a0:36:9f:00:00:03\n" in w.files()["10-lan.link"]


def test_a_made_up_mac_is_matched_as_the_current_mac(world):
    w = world("qemu_three_nics")
    w.box.nics["ens3"]["addr_assign_type"] = 1
    w.box.plug("ens3")
    w.run()
    assert "[Match]\nMACAddress=52:54:00:12:34:56\n" in w.files()["10-lan.link"]


def test_the_operators_mac_wins_over_a_faster_or_earlier_link_and_only_it_is_brought_up(world):
    w = world("qemu_three_nics")
    w.box.plug("ens3")
    w.box.plug("ens5")
    result = w.run(mac="52-54-00-12-34-58")
    assert result["original_name"] == "ens5"
    assert w.mutations() == [up("ens5")] + rename("ens5") + APPLY


def test_a_mac_no_nic_has_fails_and_lists_the_nics(world):
    w = world("qemu_three_nics")
    result = w.run(mac="52:54:00:ff:ff:ff")
    assert result["failed"] is True
    assert result["msg"] == (
        "no NIC has the MAC 52:54:00:ff:ff:ff; the NICs are: "
        "ens3 (52:54:00:12:34:56, operstate down, carrier unknown), "
        "ens4 (52:54:00:12:34:57, operstate down, carrier unknown), "
        "ens5 (52:54:00:12:34:58, operstate down, carrier unknown)"
    )
    assert w.mutations() == []


def test_a_malformed_mac_fails_before_anything_runs(world):
    w = world("qemu_three_nics")
    result = w.run(mac="52:54:00:12:34")
    assert result["failed"] is True
    assert "'52:54:00:12:34' is not a MAC address" in result["msg"]
    assert w.new_calls() == []


def test_a_link_whose_carrier_cannot_be_read_counts_when_operstate_is_up(world):
    w = world("qemu_three_nics")
    w.box.nics["ens4"]["carrier_unreadable"] = True
    w.box.plug("ens4")
    assert w.run()["original_name"] == "ens4"


def test_no_physical_nic_fails_clearly(world):
    w = world("host_kvm")
    (w.box.sysfs / "class" / "net" / "eth0").unlink()
    result = w.run()
    assert result["failed"] is True
    assert result["msg"].startswith("no physical NIC: no interface in ")
    assert result["msg"].endswith("/class/net has a device link")


def test_networkd_is_started_when_it_does_not_run(world):
    w = world("host_kvm")
    w.box.networkd_active = False
    w.run()
    assert w.mutations() == rename("eth0") + [["systemctl", "start", "systemd-networkd.service"]] + APPLY


# ---------------------------------------------------------------- timeouts


def test_no_carrier_within_the_timeout_names_every_nic_and_leaves_names_alone(world):
    w = world("qemu_three_nics")
    result = w.run(carrier_timeout=5)
    assert result["failed"] is True
    assert result["msg"] == (
        "no carrier on any NIC within 5 s: ens3 (52:54:00:12:34:56, operstate down, carrier 0), "
        "ens4 (52:54:00:12:34:57, operstate down, carrier 0), ens5 (52:54:00:12:34:58, operstate down, carrier 0)"
    )
    assert w.mutations() == [up("ens3"), up("ens4"), up("ens5")]
    assert sorted(w.box.nics) == ["ens3", "ens4", "ens5"]
    assert 5 <= w.box.now < 7
    assert w.files() == {}


def test_no_dhcp_answer_within_the_timeout_says_lan_is_up(world):
    w = world("qemu_three_nics")
    w.box.dhcp = None
    w.box.plug("ens4")
    result = w.run(dhcp_timeout=7)
    assert result["failed"] is True
    assert result["msg"] == "link lan (52:54:00:12:34:57, was ens4) is up, but no DHCP answer in 7 s"
    assert w.mutations() == [up("ens3"), up("ens4"), up("ens5")] + rename("ens4") + APPLY
    assert 7 <= w.box.now < 9


def test_a_failing_command_fails_with_the_command_rc_and_stderr(world):
    w = world("host_kvm")
    w.box.runner.responses[("networkctl", "reload")] = (1, "", "Failed to reload network settings: Access denied\n")
    result = w.run()
    assert result["failed"] is True
    assert (result["cmd"], result["rc"]) == (["networkctl", "reload"], 1)
    assert "Access denied" in result["msg"]


# ---------------------------------------------------------------- idempotence and an existing lan


def test_a_second_run_changes_nothing_and_runs_no_changing_command(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    first = w.run()
    files, issue, consoles = w.files(), w.issue.read_text(), w.console_text()
    second = w.run(diff=True)
    assert second["changed"] is False, second
    assert w.mutations() == []
    assert second["commands"] == []
    assert second.get("diff") == []
    assert lease_result(second) == lease_result(first)
    assert (w.files(), w.issue.read_text(), w.console_text()) == (files, issue, consoles)
    assert second["msg"] == "ssh root@10.0.2.15 (lan is ens5 52:54:00:12:34:58)"


def test_a_lan_with_a_lease_keeps_it_even_when_a_faster_nic_has_a_link(world):
    w = world("server_mixed")
    w.box.plug("eno1")
    w.run()
    w.box.plug("ens1f0")
    second = w.run()
    assert (second["changed"], second["original_name"]) == (False, "eno1")


def test_a_stale_network_file_is_rewritten_and_applied_without_touching_the_link(world):
    w = world("host_kvm")
    w.run()
    (w.live_dir / "10-lan.network").write_text("[Match]\nName=lan\n[Network]\nDHCP=yes\n")
    result = w.run()
    assert result["changed"] is True
    assert w.mutations() == APPLY
    assert w.files()["10-lan.network"] == LAN_NETWORK


def test_a_lan_without_lease_is_configured_again_without_renaming(world):
    w = world("qemu_three_nics")
    w.box.dhcp = None
    w.box.plug("ens3")
    w.run(dhcp_timeout=3)
    w.box.dhcp = {"delay": 1, "address": "192.168.7.20/23", "gateway": None, "dns": []}
    result = w.run()
    assert w.mutations() == APPLY
    assert lease_result(result) == {
        "name": "lan",
        "original_name": "ens3",
        "mac": "52:54:00:12:34:56",
        "permanent_mac": "52:54:00:12:34:56",
        "address": "192.168.7.20",
        "prefix": 23,
        "network": "192.168.6.0/23",
        "gateway": None,
        "dns": [],
    }


def test_a_lan_without_link_blocks_the_name_for_another_nic(world):
    w = world("qemu_three_nics")
    w.box.answer_ip_link_set(["ip", "link", "set", "dev", "ens3", "name", "lan"])
    w.box.plug("ens4")
    result = w.run(carrier_timeout=2)
    assert result["failed"] is True
    assert result["msg"] == (
        "cannot name ens4 lan: lan (52:54:00:12:34:56, operstate down, carrier 0) already has that name "
        "(an earlier choice); reboot to choose again"
    )


# ---------------------------------------------------------------- check mode


def test_check_mode_on_a_fresh_machine_says_what_it_would_do_and_touches_nothing(world):
    w = world("qemu_three_nics")
    result = w.run(check_mode=True)
    assert (result["changed"], result["nic"]) == (True, None)
    assert result["commands"] == [up("ens3"), up("ens4"), up("ens5")]
    assert result["msg"] == "no NIC has a link now; a real run brings the candidates up and waits up to 60 s"
    assert only_mutations(w.new_calls()) == []
    assert w.files() == {} and w.issue.read_text() == DEBIAN_ISSUE and w.console_text() == ["", ""]


def test_check_mode_with_a_link_reports_the_pick_and_the_files_and_runs_no_changing_command(world):
    w = world("host_kvm")
    result = w.run(check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["nic"]["name"] == "eth0"
    assert result["commands"] == rename("eth0") + APPLY
    assert only_mutations(w.new_calls()) == []
    assert result["files"] == {
        str(w.live_dir / "10-lan.link"): lan_link(
            "PermanentMACAddress=02:fc:00:00:00:01", "eth0", driver="virtio_net", bus="virtio2"
        ),
        str(w.live_dir / "10-lan.network"): LAN_NETWORK,
    }
    assert [d["after"] for d in result["diff"]] == list(result["files"].values())
    assert result["msg"] == "would name eth0 (02:fc:00:00:00:01) lan and ask DHCP for an address"
    assert w.files() == {} and w.issue.read_text() == DEBIAN_ISSUE
    assert sorted(w.box.nics) == ["eth0"]


def test_check_mode_on_a_configured_machine_reports_no_change(world):
    w = world("host_kvm")
    w.run()
    result = w.run(check_mode=True)
    assert (result["changed"], result["commands"], result["address"]) == (False, [], "10.0.2.15")


# ---------------------------------------------------------------- another root


def test_another_root_gets_the_files_and_no_live_link_is_touched(world, tmp_path):
    w = world("host_kvm")
    result = w.run(root=str(tmp_path / "mnt"))
    target = tmp_path / "mnt" / "etc" / "systemd" / "network"
    assert result["changed"] is True
    assert only_mutations(w.new_calls()) == [] and result["commands"] == []
    assert sorted(w.files(target)) == ["10-lan.link", "10-lan.network"]
    assert sorted(w.box.nics) == ["eth0"]
    assert result["msg"] == "files for lan (02:fc:00:00:00:01, was eth0) under %s" % (tmp_path / "mnt")
    assert w.run(root=str(tmp_path / "mnt"))["changed"] is False


def test_another_root_after_first_boot_copies_the_live_choice_with_its_original_name(world, tmp_path):
    w = world("qemu_three_nics")
    w.box.plug("ens4")
    w.run()
    w.box.plug("ens3")
    result = w.run(root=str(tmp_path / "mnt"))
    assert (result["original_name"], result["address"]) == ("ens4", "10.0.2.15")
    assert w.files(tmp_path / "mnt" / "etc" / "systemd" / "network") == w.files()
    assert only_mutations(w.new_calls()) == []


def test_another_root_with_no_link_and_several_nics_asks_for_a_mac(world, tmp_path):
    w = world("qemu_three_nics")
    result = w.run(root=str(tmp_path / "mnt"))
    assert result["failed"] is True
    assert "name it with mac" in result["msg"]
    chosen = w.run(root=str(tmp_path / "mnt"), mac="52:54:00:12:34:57")
    assert chosen["original_name"] == "ens4" and only_mutations(w.new_calls()) == []


# ---------------------------------------------------------------- telling the operator


def test_success_is_announced_in_issue_after_the_distro_banner_and_on_each_console(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    w.run()
    lines = [
        "pre-nixos: ssh root@10.0.2.15",
        "pre-nixos: lan DHCP 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 on lan (52:54:00:12:34:58, was ens5)",
    ]
    assert w.issue.read_text() == DEBIAN_ISSUE + "\n".join(lines) + "\n\n"
    assert w.console_text() == ["".join(line + "\r\n" for line in lines)] * 2


# ssh-keygen -lf of this key prints: 256 SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU root@pre-nixos (ED25519)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@pre-nixos\n"
HOST_KEY_LINE = "pre-nixos: host key SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU (ED25519)"


def test_the_host_key_fingerprint_is_announced_next_to_the_ssh_line(world):
    w = world("qemu_three_nics")
    w.host_key.parent.mkdir(parents=True)
    w.host_key.write_text(HOST_KEY)
    w.box.plug("ens5")
    result = w.run()
    lines = [
        "pre-nixos: ssh root@10.0.2.15",
        HOST_KEY_LINE,
        "pre-nixos: lan DHCP 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 on lan (52:54:00:12:34:58, was ens5)",
    ]
    assert result["host_key"] == HOST_KEY_LINE.split("host key ")[1]
    assert w.issue.read_text() == DEBIAN_ISSUE + "\n".join(lines) + "\n\n"
    assert w.console_text() == ["".join(line + "\r\n" for line in lines)] * 2
    again = w.run()
    assert again["changed"] is False and w.console_text() == ["".join(line + "\r\n" for line in lines)] * 2


def test_a_host_key_made_after_the_announcement_is_announced_by_the_next_run(world):
    w = world("qemu_three_nics")
    w.box.plug("ens5")
    first = w.run()
    assert first["host_key"] is None and "host key" not in w.issue.read_text()
    w.host_key.parent.mkdir(parents=True)
    w.host_key.write_text(HOST_KEY)
    second = w.run()
    assert second["changed"] is True
    assert HOST_KEY_LINE + "\n" in w.issue.read_text()
    assert w.console_text()[1].endswith("pre-nixos: ssh root@10.0.2.15\r\n%s\r\n" % HOST_KEY_LINE
                                        + "pre-nixos: lan DHCP 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 on lan"
                                        " (52:54:00:12:34:58, was ens5)\r\n")


def test_a_failure_is_announced_once_and_replaced_by_the_address_later(world):
    w = world("qemu_three_nics")
    # A missing cable may come: the failure is not the operator's settings, so the role's retry goes on.
    assert w.run(carrier_timeout=1)["settings_refused"] is False
    failure = [
        "pre-nixos: network not configured: no carrier on any NIC within 1 s: ens3 (52:54:00:12:34:56, operstate down, "
        "carrier 0), ens4 (52:54:00:12:34:57, operstate down, carrier 0), ens5 (52:54:00:12:34:58, operstate down, "
        "carrier 0)",
        "pre-nixos: network: retrying every 30 s",
    ]
    assert w.issue.read_text() == DEBIAN_ISSUE + "\n".join(failure) + "\n\n"
    assert w.console_text() == ["".join(line + "\r\n" for line in failure)] * 2
    again = w.run(carrier_timeout=1)
    assert again["failed"] is True and again["changed"] is False
    assert w.console_text() == ["".join(line + "\r\n" for line in failure)] * 2

    w.box.plug("ens3")
    w.run()
    assert w.issue.read_text().startswith(DEBIAN_ISSUE + "pre-nixos: ssh root@10.0.2.15\n")
    assert "not configured" not in w.issue.read_text()
    assert w.console_text()[0].endswith(
        "pre-nixos: ssh root@10.0.2.15\r\npre-nixos: lan DHCP 10.0.2.15/24 gateway "
        "10.0.2.2 dns 10.0.2.3 on lan (52:54:00:12:34:56, was ens3)\r\n"
    )


def test_dev_console_stands_for_the_active_consoles_and_each_device_is_written_once(tmp_path, monkeypatch):
    active = tmp_path / "class" / "tty" / "console" / "active"
    active.parent.mkdir(parents=True)
    active.write_text("tty0 ttyS0\n")
    devices = lan.console_devices(["/dev/console", "/dev/tty1", "/dev/ttyS0", "/dev/ttyS1"], str(tmp_path))
    assert devices == ["/dev/tty1", "/dev/ttyS0", "/dev/ttyS1"]
    assert lan.console_devices(["/dev/console"], str(tmp_path / "none")) == ["/dev/console"]


def test_a_machine_not_run_by_systemd_is_refused_before_any_nic_is_touched(world):
    w = world("qemu_three_nics")
    w.systemd_run_dir.rmdir()
    result = w.run()
    assert result["failed"] and "systemd is not running this machine" in result["msg"], result
    assert w.mutations() == [] and not list(w.live_dir.glob("*")), "expected nothing changed"
