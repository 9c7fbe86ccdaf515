"""The NixOS module and configuration.nix rendered from a plan: parsed and evaluated by Nix itself."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.prenixos.baseline.plugins.module_utils import disko, nix_syntax, nixos
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage

GiB = 1024 ** 3
TB = 1000 ** 4
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STUBS = os.path.join(HERE, "fixtures", "nix")
NIX_INSTANTIATE = shutil.which("nix-instantiate")
needs_nix = pytest.mark.skipif(NIX_INSTANTIATE is None, reason="nix-instantiate not installed (Debian package nix-bin)")

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl operator@desk"
KEY_BLOB = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
LAN = {"name": "lan", "original_name": "ens4", "mac": "52:54:00:12:34:56", "permanent_mac": "52:54:00:12:34:56",
       "address": "10.0.2.15", "prefix": 24, "network": "10.0.2.0/24", "gateway": "10.0.2.2", "dns": ["10.0.2.3"]}
SYNC_SCRIPT = (
    "# Keep the spare ESPs a copy of /boot so that any disk of main can boot (firmware fallback path).\n"
    "for label in {labels}; do\n"
    '  device="/dev/disk/by-label/$label"\n'
    '  if [ ! -e "$device" ]; then echo "pre-nixos: spare ESP $label not found, not synced" >&2; continue; fi\n'
    "  target=$(/nix/store/stub-coreutils/bin/mktemp -d)\n"
    '  if /nix/store/stub-util-linux/bin/mount -t vfat "$device" "$target"; then\n'
    '    /nix/store/stub-rsync/bin/rsync -rt --modify-window=1 --delete /boot/ "$target"/'
    ' || echo "pre-nixos: syncing $label failed" >&2\n'
    '    /nix/store/stub-util-linux/bin/umount "$target"\n'
    "  fi\n"
    '  /nix/store/stub-coreutils/bin/rmdir "$target"\n'
    "done\n"
)
HARDENED_SSH = {
    "AllowAgentForwarding": False,
    "AuthenticationMethods": "publickey",
    "KbdInteractiveAuthentication": False,
    "LoginGraceTime": 30,
    "MaxAuthTries": 5,
    "PasswordAuthentication": False,
    "PermitEmptyPasswords": False,
    "PermitRootLogin": "prohibit-password",
    "PermitUserEnvironment": False,
    "PubkeyAuthentication": True,
    "X11Forwarding": False,
    "KexAlgorithms": [
        "sntrup761x25519-sha512@openssh.com",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group-exchange-sha256",
    ],
    "Ciphers": [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-ctr",
        "aes192-ctr",
        "aes128-ctr",
    ],
    "Macs": ['hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256-etm@openssh.com', 'umac-128-etm@openssh.com'],
    "HostKeyAlgorithms": 'ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-256',
}


# Machines, as disk_facts would report them

def disk(name, size, rotational, **facts):
    reported = {"name": name, "type": "disk", "path": "/dev/disk/by-id/wwn-" + name, "dev": "/dev/" + name,
                "size": size, "rotational": rotational, "removable": False, "read_only": False,
                "transport": "sata", "boot_medium": False, "in_use": False, "in_use_reasons": []}
    reported.update(facts)
    return reported


def default_machine():
    """The `make demo` machine: 1 NVMe 64 GiB, 2 SSDs 32 GiB, an HDD pair 16 GiB, 3 HDDs 24 GiB."""
    return [disk("nvme0n1", 64 * GiB, False, transport="nvme"), disk("sda", 32 * GiB, False),
            disk("sdb", 32 * GiB, False), disk("sdc", 16 * GiB, True), disk("sdd", 16 * GiB, True),
            disk("sde", 24 * GiB, True), disk("sdf", 24 * GiB, True), disk("sdg", 24 * GiB, True)]


def plan_for(machine):
    """Plans of the machines the tests use, by name."""
    machines = {
        "default": (default_machine(), {}),
        "ssd_only": ([disk("sda", TB, False), disk("sdb", TB, False)], {}),
        "hdd_only": ([disk("sda", 2 * TB, True), disk("sdb", 2 * TB, True)], {}),
        "raid6_backups": ([disk("nvme0n1", TB, False)] + [disk("sd" + c, 4 * TB, True) for c in "abcdef"],
                          {"backups": True}),
        "redundant_raid6": ([disk("sd" + c, TB, False) for c in "abcde"],
                            {"redundant_main": True, "swap_on_ssd": True}),
        "single_nvme": ([disk("nvme0n1", TB, False, transport="nvme")], {}),
    }
    disks, options = machines[machine]
    return plan_storage(disks, 16 * GiB, options)


# Nix

def nix(*args):
    result = subprocess.run([NIX_INSTANTIATE, "--readonly-mode", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, "nix-instantiate %s failed:\n%s" % (" ".join(args), result.stderr)
    return result.stdout


def nix_parses(path):
    nix("--parse", str(path))
    return True


def evaluate_module(tmp_path, text, tag=False, name="pre-nixos.nix"):
    """The module's attribute set, evaluated with the lib/pkgs stubs."""
    path = tmp_path / name
    path.write_text(text)
    nix_parses(path)
    args = ["--eval", "--strict", "--json", os.path.join(STUBS, "eval-module.nix"), "--argstr", "file", str(path)]
    if tag:
        args += ["--arg", "tag", "true"]
    return json.loads(nix(*args))


def evaluate_expression(text):
    return json.loads(nix("--eval", "--strict", "--json", "-E", text))


def storage_view(module):
    """The storage-related part of an evaluated module."""
    boot = module["boot"]
    return {
        "fileSystems": module["fileSystems"],
        "swapDevices": module["swapDevices"],
        "swraid": boot.get("swraid"),
        "initrd": boot["initrd"],
        "loader": boot["loader"],
    }


def by_label(label, fs_type="ext4"):
    return {"device": "/dev/disk/by-label/" + label, "fsType": fs_type}


ESP = {"device": "/dev/disk/by-label/EFI", "fsType": "vfat", "options": ["fmask=0077", "dmask=0077"]}
RAID_CONF = {"enable": True, "mdadmConf": "HOMEHOST <ignore>\nMAILADDR root\n"}
LVM_INITRD = {"services": {"lvm": {"enable": True}}}
EFI_LOADER = {"canTouchEfiVariables": True, "efiSysMountPoint": "/boot"}


# The whole module for the default machine

@needs_nix
def test_the_default_machine_gets_storage_boot_console_network_and_ssh(tmp_path):
    module = evaluate_module(tmp_path, nixos.render_pre_nixos(plan_for("default"), [KEY], lan=LAN, hostname="web1"))
    assert module == {
        "fileSystems": {"/": by_label("slash"), "/boot": ESP, "/data": by_label("data"), "/home": by_label("home")},
        "swapDevices": [{"label": "swap"}],
        "boot": {
            "swraid": RAID_CONF,
            "initrd": {"availableKernelModules": ["md_mod", "raid0", "raid1", "raid456"], **LVM_INITRD},
            "loader": {
                "systemd-boot": {"enable": True, "extraInstallCommands": SYNC_SCRIPT.format(labels="EFI2")},
                "efi": EFI_LOADER,
            },
            "kernelParams": ["console=tty0", "console=ttyS0,115200n8"],
        },
        "networking": {"useNetworkd": True, "useDHCP": False, "hostName": "web1", "firewall": {"enable": True}},
        "systemd": {
            "network": {
                "enable": True,
                "links": {"10-lan": {"matchConfig": {"PermanentMACAddress": "52:54:00:12:34:56"},
                                     "linkConfig": {"Name": "lan"}}},
                "networks": {"10-lan": {"matchConfig": {"Name": "lan"},
                                        "networkConfig": {"DHCP": "yes", "IPv6AcceptRA": "yes"},
                                        "dhcpV4Config": {"ClientIdentifier": "mac"},
                                        "linkConfig": {"RequiredForOnline": "routable"}}},
            }
        },
        "services": {"openssh": {"enable": True, "openFirewall": True, "settings": HARDENED_SSH}},
        "users": {"users": {"root": {"openssh": {"authorizedKeys": {"keys": [KEY]}}}}},
    }


@needs_nix
def test_storage_is_forced_over_hardware_configuration_and_the_boot_loader_is_only_a_default(tmp_path):
    module = evaluate_module(
        tmp_path, nixos.render_pre_nixos(plan_for("default"), [KEY], lan=LAN, hostname="web1"), tag=True
    )
    assert module["fileSystems"]["/"] == {"_mkForce": by_label("slash")}
    assert module["fileSystems"]["/boot"] == {"_mkForce": ESP}
    assert module["swapDevices"] == {"_mkForce": [{"label": "swap"}]}
    assert module["boot"]["loader"]["systemd-boot"]["enable"] == {"_mkDefault": True}
    assert module["boot"]["loader"]["efi"]["canTouchEfiVariables"] == {"_mkDefault": True}
    assert module["networking"]["hostName"] == {"_mkDefault": "web1"}
    # What an operator must not loosen by accident stays a plain definition.
    assert module["services"]["openssh"]["settings"]["PasswordAuthentication"] is False


# Storage, machine by machine

@needs_nix
@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (
            "ssd_only",
            {
                "fileSystems": {"/": by_label("slash"), "/boot": ESP, "/home": by_label("home")},
                "swapDevices": [],
                "swraid": RAID_CONF,
                "initrd": {"availableKernelModules": ["md_mod", "raid0"], **LVM_INITRD},
                "loader": {"systemd-boot": {"enable": True, "extraInstallCommands": SYNC_SCRIPT.format(labels="EFI2")},
                           "efi": EFI_LOADER},
            },
        ),
        (
            "hdd_only",
            {
                "fileSystems": {"/": by_label("slash"), "/boot": ESP, "/home": by_label("home")},
                "swapDevices": [{"label": "swap"}],
                "swraid": RAID_CONF,
                "initrd": {"availableKernelModules": ["md_mod", "raid1"], **LVM_INITRD},
                "loader": {"systemd-boot": {"enable": True, "extraInstallCommands": SYNC_SCRIPT.format(labels="EFI2")},
                           "efi": EFI_LOADER},
            },
        ),
        (
            "raid6_backups",
            {
                "fileSystems": {"/": by_label("slash"), "/boot": ESP, "/data": by_label("data"),
                                "/home": by_label("home")},
                "swapDevices": [{"label": "swap"}],
                "swraid": RAID_CONF,
                "initrd": {"availableKernelModules": ["md_mod", "raid456"], **LVM_INITRD},
                "loader": {"systemd-boot": {"enable": True}, "efi": EFI_LOADER},
            },
        ),
        (
            "redundant_raid6",
            {
                "fileSystems": {"/": by_label("slash"), "/boot": ESP, "/home": by_label("home")},
                "swapDevices": [{"label": "swap"}],
                "swraid": RAID_CONF,
                "initrd": {"availableKernelModules": ["md_mod", "raid456"], **LVM_INITRD},
                "loader": {
                    "systemd-boot": {"enable": True,
                                     "extraInstallCommands": SYNC_SCRIPT.format(labels="EFI2 EFI3 EFI4 EFI5")},
                    "efi": EFI_LOADER,
                },
            },
        ),
        (
            "single_nvme",
            {
                "fileSystems": {"/": by_label("slash"), "/boot": ESP, "/home": by_label("home")},
                "swapDevices": [],
                "swraid": None,
                "initrd": LVM_INITRD,
                "loader": {"systemd-boot": {"enable": True}, "efi": EFI_LOADER},
            },
        ),
    ],
)
def test_each_machine_mounts_its_planned_filesystems_by_label(tmp_path, machine, expected):
    module = evaluate_module(tmp_path, nixos.render_pre_nixos(plan_for(machine), [KEY], lan=LAN))
    assert storage_view(module) == expected


def test_the_module_names_every_label_the_plan_formats():
    plan = plan_for("default")
    text = nixos.render_pre_nixos(plan, [KEY], lan=LAN)
    labels = [p["label"] for p in plan["partitions"] if p["label"]] + [lv["label"] for lv in plan["logical_volumes"]]
    assert sorted(labels) == ["EFI", "EFI2", "data", "home", "slash", "swap"]
    for label in labels:
        assert '"%s"' % label in text or '"/dev/disk/by-label/%s"' % label in text or " %s;" % label in text


def test_a_plan_without_a_mounted_esp_is_refused():
    plan = plan_for("single_nvme")
    for partition in plan["partitions"]:
        partition["mountpoint"] = None if partition["filesystem"] == "vfat" else partition["mountpoint"]
    with pytest.raises(nixos.NixosConfigError, match="no mounted EFI system partition"):
        nixos.render_pre_nixos(plan, [KEY], lan=LAN)


# Network

@needs_nix
def test_a_static_address_replaces_dhcp_on_lan(tmp_path):
    text = nixos.render_pre_nixos(plan_for("single_nvme"), [KEY], lan=LAN, address="192.0.2.10/24",
                                  gateway="192.0.2.1", dns=["192.0.2.53", "2001:db8::53"])
    network = evaluate_module(tmp_path, text)["systemd"]["network"]
    assert network["networks"] == {
        "10-lan": {
            "matchConfig": {"Name": "lan"},
            "networkConfig": {"DHCP": "no", "IPv6AcceptRA": "yes"},
            "address": ["192.0.2.10/24"],
            "gateway": ["192.0.2.1"],
            "dns": ["192.0.2.53", "2001:db8::53"],
            "linkConfig": {"RequiredForOnline": "routable"},
        }
    }
    assert network["links"]["10-lan"]["matchConfig"] == {"PermanentMACAddress": "52:54:00:12:34:56"}


@needs_nix
def test_an_ipv6_static_address_is_accepted_and_a_made_up_mac_matched_as_is(tmp_path):
    lan = {"mac": "52-54-00-AB-CD-EF", "permanent_mac": None}
    text = nixos.render_pre_nixos(plan_for("single_nvme"), [KEY], lan=lan, address="2001:db8::10/64",
                                  gateway="2001:db8::1")
    network = evaluate_module(tmp_path, text)["systemd"]["network"]
    # No permanent MAC (the driver made one up): match the current one, as the lan module's .link does.
    assert network["links"]["10-lan"]["matchConfig"] == {"MACAddress": "52:54:00:ab:cd:ef"}
    assert network["networks"]["10-lan"]["address"] == ["2001:db8::10/64"]
    assert network["networks"]["10-lan"]["gateway"] == ["2001:db8::1"]
    assert network["networks"]["10-lan"]["networkConfig"] == {"DHCP": "no", "IPv6AcceptRA": "no"}


@needs_nix
def test_without_lan_facts_every_ethernet_nic_asks_for_dhcp_and_none_is_renamed(tmp_path):
    module = evaluate_module(tmp_path, nixos.render_pre_nixos(plan_for("single_nvme"), [KEY]))
    assert module["systemd"]["network"] == {
        "enable": True,
        "networks": {"90-ethernet-dhcp": {"matchConfig": {"Type": "ether"},
                                          "networkConfig": {"DHCP": "yes", "IPv6AcceptRA": "yes"},
                                          "dhcpV4Config": {"ClientIdentifier": "mac"}}},
    }
    assert "hostName" not in module["networking"]


@pytest.mark.parametrize("unknown", [None, "", "None", "null"])
def test_an_unknown_permanent_mac_falls_back_to_the_current_one_however_the_null_was_spelled(unknown):
    assert nixos.link_match({"mac": "52:54:00:12:34:56", "permanent_mac": unknown}) == {
        "MACAddress": "52:54:00:12:34:56"}
    assert nixos.link_match({"mac": "52:54:00:12:34:56", "permanent_mac": "52:54:00:AB:CD:EF"}) == {
        "PermanentMACAddress": "52:54:00:ab:cd:ef"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lan": {"mac": "52:54:00:12:34"}}, "not a MAC address"),
        ({"lan": {"mac": "52:54:00:12:34:56", "permanent_mac": "garbage"}}, "not a MAC address"),
        ({"lan": {"mac": '52:54:00:12:34:56"; x = "'}}, "not a MAC address"),
        ({"lan": {"name": "lan", "address": "10.0.2.15"}}, "not a MAC address"),
        ({"lan": dict(LAN, name="lan; rm -rf /")}, "not a valid Linux interface name"),
        ({"lan": LAN, "address": "192.0.2.10"}, "has no prefix length"),
        ({"lan": LAN, "address": "192.0.2.300/24"}, "not an address with a prefix"),
        ({"lan": LAN, "address": "192.0.2.10/24", "gateway": "2001:db8::1"}, "needs a static IPv6 address"),
        ({"lan": LAN, "address": "192.0.2.10/24", "gateway": "gw"}, "gateway 'gw' is not an IPv4 or IPv6 address"),
        ({"lan": LAN, "address": "192.0.2.10/24", "dns": ["ns1"]}, "DNS server 'ns1' is not an IPv4 or IPv6"),
        ({"address": "192.0.2.10/24"}, "needs the LAN facts"),
        ({"lan": LAN, "gateway": "192.0.2.1"}, "needs a static IPv4 address"),
        ({"lan": LAN, "hostname": 'web1"; services.openssh.enable = false; x = "'}, "not one NixOS accepts"),
        ({"lan": LAN, "hostname": "web1.example.org"}, "no dots"),
        ({"lan": LAN, "hostname": "web1\n"}, "not one NixOS accepts"),
        ({"lan": LAN, "ssh": {"Banner\nPort": "2222"}}, "not an sshd keyword"),
        ({"lan": LAN, "ssh": {"Banner": "a\nPasswordAuthentication yes"}}, "unusable value"),
    ],
)
def test_values_nixos_would_refuse_or_that_smell_of_injection_are_refused(kwargs, message):
    with pytest.raises(nixos.NixosConfigError, match=message):
        nixos.render_pre_nixos(plan_for("single_nvme"), [KEY], **kwargs)


# SSH and keys

@needs_nix
def test_hostile_key_comments_reach_nixos_exactly_as_given(tmp_path):
    keys = [
        KEY_BLOB.join(["ssh-ed25519 ", ' quote" dollar${builtins.abort "x"} backslash\\ end\\']),
        'from="10.0.0.0/8",command="echo ${HOME} \\"hi\\"" ssh-ed25519 ' + KEY_BLOB + " ''${x}''",
    ]
    module = evaluate_module(tmp_path, nixos.render_pre_nixos(plan_for("single_nvme"), keys, lan=LAN))
    assert module["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"] == [key.strip() for key in keys]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "no authorized key"),
        (["not a key"], "authorized key 1 is not usable: no known key type"),
        ([KEY, KEY + "\nssh-ed25519 " + KEY_BLOB + " smuggled"], "authorized key 2 spans several lines"),
        (["ssh-rsa " + KEY_BLOB + " mislabelled"], "key says ssh-rsa but its data is ssh-ed25519"),
    ],
)
def test_missing_malformed_or_multi_line_keys_are_refused(keys, message):
    with pytest.raises(nixos.NixosConfigError, match=message):
        nixos.render_pre_nixos(plan_for("single_nvme"), keys, lan=LAN)


def test_the_default_ssh_settings_are_the_ssh_hardening_roles_settings():
    with open(os.path.join(ROOT, "roles", "ssh_hardening", "defaults", "main.yml")) as handle:
        role_defaults = yaml.safe_load(handle)
    assert nixos.DEFAULT_SSH_SETTINGS == role_defaults["prenixos_ssh_settings"]
    assert nixos.ssh_settings_for_nixos(role_defaults["prenixos_ssh_settings"]) == HARDENED_SSH


@needs_nix
def test_custom_ssh_settings_become_nixos_values(tmp_path):
    text = nixos.render_pre_nixos(plan_for("single_nvme"), [KEY], lan=LAN,
                                  ssh={"PermitRootLogin": "prohibit-password", "MaxAuthTries": "3",
                                       "Banner": '/etc/issue "${x}"', "UseDns": "no"})
    assert evaluate_module(tmp_path, text)["services"]["openssh"]["settings"] == {
        "Banner": '/etc/issue "${x}"', "MaxAuthTries": 3, "PermitRootLogin": "prohibit-password", "UseDns": False,
    }


# The ESP sync script

@needs_nix
def test_hostile_labels_stay_data_in_nix_and_in_the_esp_sync_shell_script(tmp_path):
    plan = plan_for("ssd_only")
    hostile = "E'F\"I${x}$(touch pwned)\\2"
    for partition in plan["partitions"]:
        if partition["label"] == "EFI2":
            partition["label"] = hostile
    module = evaluate_module(tmp_path, nixos.render_pre_nixos(plan, [KEY], lan=LAN))
    script = module["boot"]["loader"]["systemd-boot"]["extraInstallCommands"]
    assert script.splitlines()[1] == "for label in 'E'\"'\"'F\"I${x}$(touch pwned)\\2'; do"
    bash = shutil.which("bash")
    subprocess.run([bash, "-n", "-c", script], check=True)
    ran = subprocess.run([bash, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert ran.stderr == "pre-nixos: spare ESP %s not found, not synced\n" % hostile
    assert not (tmp_path / "pwned").exists()


# configuration.nix

@needs_nix
def test_configuration_imports_pre_nixos_and_hardware_configuration_only_when_present(tmp_path):
    path = tmp_path / "configuration.nix"
    path.write_text(nixos.render_configuration("24.11"))
    nix_parses(path)

    def evaluate():
        return json.loads(nix("--eval", "--strict", "--json", os.path.join(STUBS, "eval-configuration.nix"),
                              "--argstr", "file", str(path)))

    assert evaluate() == {"imports": [str(tmp_path / "pre-nixos.nix")], "system": {"stateVersion": "24.11"}}
    (tmp_path / "hardware-configuration.nix").write_text("{ ... }: { }\n")
    assert evaluate()["imports"] == [str(tmp_path / "pre-nixos.nix"), str(tmp_path / "hardware-configuration.nix")]
    assert nixos.imports_pre_nixos(path.read_text())


@pytest.mark.parametrize("version", ["24.11.1", "latest", '24.11"; x = "', ""])
def test_a_state_version_that_is_not_a_release_is_refused(version):
    with pytest.raises(nixos.NixosConfigError, match="not a NixOS release"):
        nixos.render_configuration(version)


@pytest.mark.parametrize(
    ("text", "imports"),
    [
        ("{ imports = [ ./hardware-configuration.nix ./pre-nixos.nix ]; }", True),
        ("{\n  imports =\n    [ # generated\n      ./pre-nixos.nix\n    ];\n}", True),
        ("{ imports = [ /etc/nixos/pre-nixos.nix ]; }", True),
        ("{ imports = [ ./hardware-configuration.nix ]; }", False),
        ("{ imports = [ ./hardware-configuration.nix ]; # ./pre-nixos.nix\n}", False),
        ("{ imports = [ ./not-pre-nixos.nix.bak ]; }", False),
    ],
)
def test_an_existing_configuration_is_checked_for_the_import(text, imports):
    assert nixos.imports_pre_nixos(text) is imports


# Every file parses

@needs_nix
@pytest.mark.parametrize("machine", ["default", "ssd_only", "hdd_only", "raid6_backups", "redundant_raid6",
                                     "single_nvme"])
def test_every_rendered_file_parses(tmp_path, machine):
    plan = plan_for(machine)
    files = {
        "pre-nixos.nix": nixos.render_pre_nixos(plan, [KEY], lan=LAN, hostname="web1"),
        "configuration.nix": nixos.render_configuration(),
        "disko.nix": disko.render_disko(plan),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        assert nix_parses(tmp_path / name)


# Nix syntax helpers, proven against Nix itself

NASTY = st.lists(st.sampled_from(list("a $'{}\\\"\n\t\r#/;") + ["${", "''", "'''", "$$"]), max_size=20).map("".join)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30)


@needs_nix
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(NASTY, ANY_TEXT), min_size=1, max_size=8))
def test_strings_round_trip_through_nix_in_both_string_syntaxes(texts):
    items = []
    for text in texts:
        items.append(nix_syntax.nix_string(text))
        items.append(nix_syntax.to_nix(nix_syntax.NixIndented(text), 2))
    evaluated = evaluate_expression("[\n" + "\n".join("  (%s)" % item for item in items) + "\n]")
    assert evaluated == [text for text in texts for syntax in ("double-quoted", "indented")]


@needs_nix
@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(NASTY, st.sampled_from(["if", "or", "in", "rec", "a-b", "a.b", "_x", "x'", "1a", ""])),
                min_size=1, max_size=6, unique=True))
def test_attribute_names_round_trip_through_nix(names):
    assert evaluate_expression(nix_syntax.to_nix({name: 1 for name in names})) == {name: 1 for name in names}


@needs_nix
def test_interpolations_in_indented_strings_stay_interpolations(tmp_path):
    value = nix_syntax.NixIndented("x$", nix_syntax.NixExpr('"Y"'), "'", nix_syntax.NixExpr('"Z"'), "'")
    assert evaluate_expression(nix_syntax.to_nix(value)) == "x$Y'Z'"


def test_comments_cannot_break_out_into_code():
    assert nix_syntax.nix_comment("EFI2\n} // { evil = true; #") == "# EFI2 } // { evil = true; #"


def test_nul_cannot_be_written():
    with pytest.raises(nixos.NixosConfigError, match="NUL"):
        nix_syntax.nix_string("a\0b")
    with pytest.raises(nixos.NixosConfigError, match="NUL"):
        nix_syntax.to_nix(nix_syntax.NixIndented("a\0b"))
