"""The nixos_config module: files under <root>/etc/nixos, written once, atomically, only when they differ."""
from __future__ import annotations

import os

import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from module_harness import run_module
from test_nixos_render import KEY, LAN, needs_nix, nix_parses, plan_for

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing, disko, nixos
from ansible_collections.prenixos.baseline.plugins.modules import nixos_config


@pytest.fixture(autouse=True)
def no_leftover_warnings():
    """Ansible keeps module warnings in a process-wide list; each test starts with none."""
    ansible_warnings._global_warnings.clear()


def warning_messages(result):
    return [warning["event"]["msg"] if isinstance(warning, dict) else warning for warning in result.get("warnings", [])]


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fake /mnt that counts as a mount point."""
    target = tmp_path / "mnt"
    target.mkdir()
    real_ismount = os.path.ismount
    monkeypatch.setattr(nixos_config.os.path, "ismount", lambda path: path == str(target) or real_ismount(path))
    return target


def args(root, **extra):
    values = {"plan": plan_for("default"), "lan": LAN, "authorized_keys": [KEY], "root": str(root), "hostname": "web1"}
    values.update(extra)
    return values


def read(root, name):
    return (root / "etc" / "nixos" / name).read_text()


@needs_nix
def test_a_fresh_root_gets_pre_nixos_nix_and_a_configuration_that_imports_it(root, capsys):
    result = run_module(nixos_config.main, args(root), capsys)
    assert result["changed"] is True
    assert result["path"] == str(root / "etc/nixos/pre-nixos.nix")
    assert result["configuration_state"] == "written"
    assert result["configuration_imports_pre_nixos"] is True
    assert result["files"] == [
        {"path": str(root / "etc/nixos/pre-nixos.nix"), "changed": True},
        {"path": str(root / "etc/nixos/configuration.nix"), "changed": True},
    ]
    assert read(root, "pre-nixos.nix") == result["nixos"] == nixos.render_pre_nixos(
        plan_for("default"), [KEY], lan=LAN, hostname="web1")
    assert read(root, "configuration.nix") == nixos.render_configuration("24.11")
    assert oct(os.stat(root / "etc/nixos/pre-nixos.nix").st_mode & 0o777) == "0o644"
    assert not (root / "etc/nixos/disko.nix").exists()
    assert set(result["install_tools"]) == {"nixos-generate-config", "nixos-install"}
    for name in ("pre-nixos.nix", "configuration.nix"):
        assert nix_parses(root / "etc" / "nixos" / name)
    assert [name for name in os.listdir(root / "etc/nixos") if name.startswith(".")] == []


def test_a_second_run_changes_nothing(root, capsys):
    run_module(nixos_config.main, args(root), capsys)
    again = run_module(nixos_config.main, args(root), capsys)
    assert again["changed"] is False
    assert again["configuration_state"] == "kept"
    assert again["configuration_imports_pre_nixos"] is True
    assert again["files"] == [
        {"path": str(root / "etc/nixos/pre-nixos.nix"), "changed": False},
        {"path": str(root / "etc/nixos/configuration.nix"), "changed": False},
    ]
    assert "warnings" not in again


def test_check_mode_reports_the_change_and_writes_nothing(root, capsys):
    result = run_module(nixos_config.main, args(root), capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert not (root / "etc").exists()
    assert [(d["after_header"], d["before"]) for d in result["diff"]] == [
        (str(root / "etc/nixos/pre-nixos.nix"), ""),
        (str(root / "etc/nixos/configuration.nix"), ""),
    ]
    assert result["diff"][0]["after"] == result["nixos"]


def test_a_changed_input_rewrites_pre_nixos_nix_and_diff_shows_both_versions(root, capsys):
    run_module(nixos_config.main, args(root), capsys)
    before = read(root, "pre-nixos.nix")
    result = run_module(nixos_config.main, args(root, hostname="web2"), capsys, diff=True)
    assert result["changed"] is True
    assert [entry["changed"] for entry in result["files"]] == [True, False]
    assert result["diff"] == [{"before_header": str(root / "etc/nixos/pre-nixos.nix"), "before": before,
                               "after_header": str(root / "etc/nixos/pre-nixos.nix"), "after": result["nixos"]}]
    assert 'networking.hostName = lib.mkDefault "web2";' in read(root, "pre-nixos.nix")


def test_an_existing_configuration_is_never_overwritten_and_a_missing_import_is_reported(root, capsys):
    mine = "{ ... }: { imports = [ ./hardware-configuration.nix ]; system.stateVersion = \"23.11\"; }\n"
    (root / "etc/nixos").mkdir(parents=True)
    (root / "etc/nixos/configuration.nix").write_text(mine)
    result = run_module(nixos_config.main, args(root), capsys)
    assert read(root, "configuration.nix") == mine
    assert result["configuration_state"] == "kept"
    assert result["configuration_imports_pre_nixos"] is False
    assert warning_messages(result) == [
        "%s exists and does not import ./pre-nixos.nix; add it to its imports (imports = [ "
        "./hardware-configuration.nix ./pre-nixos.nix ];) or the installed system will not know its disks, "
        "network and keys" % (root / "etc/nixos/configuration.nix")
    ]


def test_an_existing_configuration_that_imports_pre_nixos_passes_quietly(root, capsys):
    (root / "etc/nixos").mkdir(parents=True)
    (root / "etc/nixos/configuration.nix").write_text("{ ... }: { imports = [ ./pre-nixos.nix ]; }\n")
    result = run_module(nixos_config.main, args(root), capsys)
    assert result["configuration_imports_pre_nixos"] is True
    assert "warnings" not in result


@needs_nix
def test_the_disko_layout_is_written_next_to_it_when_asked(root, capsys):
    result = run_module(nixos_config.main, args(root, disko=True), capsys)
    assert result["disko_path"] == str(root / "etc/nixos/disko.nix")
    assert read(root, "disko.nix") == disko.render_disko(plan_for("default"))
    assert nix_parses(root / "etc/nixos/disko.nix")


def test_an_unmounted_root_is_refused_so_nothing_lands_on_the_live_system(tmp_path, capsys):
    unmounted = tmp_path / "mnt"
    unmounted.mkdir()
    result = run_module(nixos_config.main, args(unmounted), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("%s is not a mount point: the planned filesystems are not mounted" % unmounted)
    assert list(unmounted.iterdir()) == []


def test_require_mounted_false_writes_into_any_directory(tmp_path, capsys):
    staging = tmp_path / "staging"
    result = run_module(nixos_config.main, args(staging, require_mounted=False), capsys)
    assert result["changed"] is True
    assert (staging / "etc/nixos/pre-nixos.nix").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"authorized_keys": []}, "cannot write the NixOS configuration: no authorized key"),
        ({"authorized_keys": ["ssh-ed25519 bm90IGEga2V5"]}, "authorized key 1 is not usable"),
        ({"hostname": 'x"; y = "'}, "not one NixOS accepts"),
        ({"state_version": "unstable"}, "not a NixOS release"),
        ({"plan": {"version": 3}}, "reads storage plans of versions 1 and 2, not 3"),
        ({"plan": {"version": 1, "partitions": []}}, "the plan lacks 'logical_volumes'"),
        ({"address": "10.0.0.5/8", "gateway": "10.0.0.1", "dns": ["resolver"]}, "DNS server 'resolver'"),
        ({"address": "10.0.0.5/8", "gateway": "192.0.2.1"},
         "cannot write the NixOS configuration: the gateway 192.0.2.1 is outside the network 10.0.0.0/8"),
        ({"vlan": 4095}, "cannot write the NixOS configuration: the VLAN ID 4095 is not a number from 1 to 4094"),
        ({"lan": dict(LAN, settings={"addresses": ["10.0.0.5"]})},
         "cannot write the NixOS configuration: the LAN facts' settings are not usable: the address '10.0.0.5' has "
         "no prefix length"),
    ],
)
def test_bad_input_fails_with_a_message_and_writes_nothing(root, capsys, extra, message):
    result = run_module(nixos_config.main, args(root, **extra), capsys)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not (root / "etc").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"address": "10.0.0.5/8", "lan": None}, "missing parameter(s) required by 'address': lan"),
        ({"gateway": "10.0.0.1", "lan": None}, "missing parameter(s) required by 'gateway': lan"),
        ({"vlan": 42, "lan": None}, "missing parameter(s) required by 'vlan': lan"),
        ({"vlan": "forty-two"}, "argument 'vlan' is of type"),
    ],
)
def test_option_relations_are_checked_by_ansible(root, capsys, extra, message):
    result = run_module(nixos_config.main, args(root, **extra), capsys)
    assert result["failed"] is True
    assert message in result["msg"]


def test_a_static_address_given_as_one_string_reaches_the_file(root, capsys):
    result = run_module(nixos_config.main, args(root, address="192.0.2.10/24", gateway="192.0.2.1",
                                                dns=["192.0.2.53"]), capsys)
    assert result["network"] == {"addresses": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "dns": ["192.0.2.53"],
                                 "vlan": None}
    text = read(root, "pre-nixos.nix")
    assert 'address = [ "192.0.2.10/24" ];' in text
    assert 'gateway = [ "192.0.2.1" ];' in text
    assert 'networkConfig = { DHCP = "no"; IPv6AcceptRA = "yes"; };' in text


def test_the_lan_facts_settings_are_the_installed_network_unless_options_say_otherwise(root, capsys):
    facts = dict(LAN, mac="5254.0012.3456", permanent_mac="52-54-00-12-34-56",
                 settings={"addresses": ["192.0.2.10/24", "2001:db8::10/64"], "gateways": ["192.0.2.1"],
                           "dns": ["192.0.2.53"], "vlan": 42})
    result = run_module(nixos_config.main, args(root, lan=facts), capsys)
    assert result["network"] == facts["settings"]
    assert result["nixos"] == nixos.render_pre_nixos(plan_for("default"), [KEY], lan=dict(LAN, settings={}),
                                                     address=["192.0.2.10/24", "2001:db8::10/64"],
                                                     gateway="192.0.2.1", dns=["192.0.2.53"], vlan=42,
                                                     hostname="web1")
    assert 'systemd.network.links."10-lan-port" = {' in result["nixos"]
    assert 'vlanConfig = { Id = 42; };' in result["nixos"]

    mine = run_module(nixos_config.main, args(root, lan=facts, address=["198.51.100.7/24", "2001:db8:1::7/64"],
                                              gateway=["198.51.100.1", "fe80::1"], vlan=0), capsys)
    assert mine["changed"] is True
    assert mine["network"] == {"addresses": ["198.51.100.7/24", "2001:db8:1::7/64"],
                               "gateways": ["198.51.100.1", "fe80::1"], "dns": ["192.0.2.53"], "vlan": None}
    text = read(root, "pre-nixos.nix")
    assert 'address = [ "198.51.100.7/24" "2001:db8:1::7/64" ];' in text
    assert "lan-port" not in text and "vlanConfig" not in text


def test_without_netaddr_the_module_says_what_to_install(root, capsys, monkeypatch):
    monkeypatch.setattr(addressing, "NETADDR_IMPORT_ERROR", "Traceback: No module named 'netaddr'")
    result = run_module(nixos_config.main, args(root), capsys)
    assert result["failed"] is True
    assert "Failed to import the required Python library (netaddr)" in result["msg"]
    assert not (root / "etc").exists()
