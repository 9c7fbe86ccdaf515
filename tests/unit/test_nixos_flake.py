"""The NixOS flavour of the boot image (iso/nixos): what can be checked without nixpkgs.

nixpkgs cannot be fetched here, so the ISO is not built. What is checked: every .nix file parses; the
flake's outputs evaluate with a stand-in nixpkgs; the image module evaluates with lib/pkgs stubs and
sets what the spec asks (installer module, serial console, key-only SSH, the first-boot unit); the unit
and wrapper it embeds are the Debian image's own files (read by relative path, never copied); the
build script makes or collects the keys and calls nix as documented.
"""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from test_nixos_render import KEY, ROOT, STUBS, needs_nix, nix_parses

from ansible_collections.prenixos.baseline.plugins.module_utils import nixos

FLAKE_DIR = os.path.join(ROOT, "iso", "nixos")
FIRSTBOOT_UNIT = os.path.join(ROOT, "iso", "firstboot", "pre-nixos.service")
FIRSTBOOT_WRAPPER = os.path.join(ROOT, "iso", "firstboot", "pre_nixos_firstboot.py")
SSHD_DROP_IN = os.path.join(ROOT, "iso", "os-layer", "rootfs", "etc", "ssh", "sshd_config.d", "00-pre-nixos.conf")
DHCP_NETWORK = os.path.join(ROOT, "iso", "os-layer", "rootfs", "etc", "systemd", "network", "90-pre-nixos-dhcp.network")


def nix_files():
    found = []
    for directory in (FLAKE_DIR, STUBS):
        found += sorted(os.path.join(directory, name) for name in os.listdir(directory) if name.endswith(".nix"))
    return found


def evaluate(*args, env=None):
    environment = dict(os.environ)
    environment.pop("PRENIXOS_AUTHORIZED_KEYS", None)
    environment.update(env or {})
    result = subprocess.run(["nix-instantiate", "--readonly-mode", "--eval", "--strict", "--json", *args],
                            capture_output=True, text=True, env=environment, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def evaluate_image(keys):
    return evaluate(os.path.join(STUBS, "eval-image.nix"), "--argstr", "file", os.path.join(FLAKE_DIR, "image.nix"),
                    "--argstr", "keys", json.dumps(keys))


def evaluate_flake(env=None):
    return evaluate(os.path.join(STUBS, "eval-flake.nix"), "--argstr", "flake", os.path.join(FLAKE_DIR, "flake.nix"),
                    env=env)


@needs_nix
@pytest.mark.parametrize("path", nix_files(), ids=os.path.basename)
def test_every_nix_file_parses(path):
    assert nix_parses(path)


# The flake

@needs_nix
def test_the_flake_builds_an_installer_iso_from_nixpkgs_and_the_image_module():
    flake = evaluate_flake()
    assert flake == {
        "description": "pre-nixos baseline: NixOS installer ISO that brings a server to the pre-nixos baseline",
        "inputs": {"nixpkgs": {"url": "github:NixOS/nixpkgs/nixos-24.11"}},
        "outputs": ["nixosConfigurations", "nixosModules", "packages"],
        "system": "x86_64-linux",
        "modules": [os.path.join(FLAKE_DIR, "image.nix"), {"prenixos": {"image": {"authorizedKeys": []}}}],
        "nixosModule": os.path.join(FLAKE_DIR, "image.nix"),
        "packages": {"x86_64-linux": {"iso": "/nix/store/stub-pre-nixos.iso",
                                      "default": "/nix/store/stub-pre-nixos.iso"}},
    }


@needs_nix
def test_the_flake_takes_the_operators_keys_from_the_file_named_in_the_environment(tmp_path):
    keys = tmp_path / "authorized_keys"
    keys.write_text("# the operator\n\n%s\n   \nssh-ed25519 AAAAC3 second@desk\n" % KEY)
    flake = evaluate_flake(env={"PRENIXOS_AUTHORIZED_KEYS": str(keys)})
    assert flake["modules"][1] == {"prenixos": {"image": {"authorizedKeys": [KEY, "ssh-ed25519 AAAAC3 second@desk"]}}}


# The image module

@needs_nix
def test_the_image_is_the_minimal_installer_with_serial_console_key_only_ssh_and_first_boot():
    image = evaluate_image([KEY])
    config = image["config"]
    assert image["imports"] == ["/stub/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"]
    assert config["assertions"][0]["assertion"] is True
    assert config["boot"] == {"kernelParams": ["console=tty0", "console=ttyS0,115200n8"], "loader": {"timeout": 3}}
    assert config["services"]["getty"]["autologinUser"] == "root"
    assert config["services"]["openssh"] == {
        "enable": True,
        "settings": {"AuthenticationMethods": "publickey", "KbdInteractiveAuthentication": False,
                     "PasswordAuthentication": False, "PermitEmptyPasswords": False,
                     "PermitRootLogin": "prohibit-password", "PubkeyAuthentication": True,
                     "KexAlgorithms": ["sntrup761x25519-sha512@openssh.com", "curve25519-sha256",
                                       "curve25519-sha256@libssh.org", "diffie-hellman-group16-sha512",
                                       "diffie-hellman-group18-sha512", "diffie-hellman-group-exchange-sha256"],
                     "Ciphers": ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
                                 "aes256-ctr", "aes192-ctr", "aes128-ctr"],
                     "Macs": ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
                              "umac-128-etm@openssh.com"],
                     "HostKeyAlgorithms": "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-256"},
    }
    assert config["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"] == [KEY]
    assert config["environment"]["etc"]["pre-nixos/authorized_keys"] == {"text": KEY + "\n"}
    assert config["systemd"]["services"]["sshd"] == {"aliases": ["ssh.service"]}
    assert config["networking"] == {"useDHCP": False, "useNetworkd": True}
    assert config["systemd"]["network"] == {"enable": True}

    first_boot = config["systemd"]["services"]["pre-nixos"]
    assert first_boot["overrideStrategy"] == "asDropin"
    assert first_boot["wantedBy"] == ["multi-user.target"]
    nix_path = "nixpkgs=flake:nixpkgs:/nix/var/nix/profiles/per-user/root/channels"
    assert first_boot["environment"] == {"NIX_PATH": nix_path}
    tools = {os.path.basename(entry).replace("stub-", "") for entry in first_boot["path"]}
    assert {"util-linux", "gptfdisk", "mdadm", "lvm2", "e2fsprogs", "dosfstools", "iproute2", "systemd", "openssh",
            "python3-with-ansible-core-netaddr", "sw"} <= tools
    assert config["systemd"]["tmpfiles"]["rules"] == [
        "d /usr/share/pre-nixos 0755 root root -",
        "L+ /usr/share/pre-nixos/collections - - - - /nix/store/stub-pre-nixos-collections",
        "d /opt/pre-nixos 0755 root root -",
        "L+ /opt/pre-nixos/venv - - - - /nix/store/stub-python3-with-ansible-core-netaddr",
    ]


@needs_nix
def test_without_a_key_the_image_refuses_to_build_and_says_how_to_give_one():
    assertion = evaluate_image([])["config"]["assertions"][0]
    assert assertion["assertion"] is False
    assert "iso/nixos/build.sh" in assertion["message"]
    assert "PRENIXOS_AUTHORIZED_KEYS=" in assertion["message"]


# One source: the Debian image's files, read by relative path

def wrapper_constants():
    """COLLECTIONS and VENV of the first-boot wrapper, read from its source."""
    with open(FIRSTBOOT_WRAPPER) as handle:
        text = handle.read()
    return {name: re.search(r'^%s = "([^"]+)"$' % name, text, re.M).group(1) for name in ("COLLECTIONS", "VENV")}


@needs_nix
def test_the_first_boot_unit_is_the_debian_units_text_with_only_execstart_pointing_into_the_store():
    image = evaluate_image([KEY])
    (unit,) = image["config"]["systemd"]["packages"]
    with open(FIRSTBOOT_UNIT) as handle:
        debian = handle.read()
    assert unit["writeTextDir"] == "lib/systemd/system/pre-nixos.service"
    wrapper_store_path = re.search(r"^ExecStart=\S+/bin/python3 -I (/nix/store/\S+)$", unit["text"], re.M).group(1)
    assert wrapper_store_path.endswith("-pre_nixos_firstboot.py")
    assert unit["text"] == debian.replace(
        "ExecStart=/usr/bin/python3 -I /usr/local/lib/pre-nixos/pre_nixos_firstboot.py",
        "ExecStart=/nix/store/stub-python3-with-ansible-core-netaddr/bin/python3 -I " + wrapper_store_path,
    )


@needs_nix
def test_the_wrappers_fixed_paths_are_the_ones_the_image_links_into_the_store():
    rules = evaluate_image([KEY])["config"]["systemd"]["tmpfiles"]["rules"]
    linked = {rule.split()[1] for rule in rules if rule.startswith("L+ ")}
    assert linked == set(wrapper_constants().values())
    assert evaluate_image([KEY])["config"]["environment"]["variables"] == {
        "ANSIBLE_COLLECTIONS_PATH": wrapper_constants()["COLLECTIONS"]}


@needs_nix
def test_a_unit_without_the_expected_execstart_stops_the_evaluation_with_a_message(tmp_path):
    unit = tmp_path / "pre-nixos.service"
    unit.write_text("[Service]\nExecStart=/usr/sbin/somewhere-else\n")
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "-E",
         "import %s { execStart = \"x\"; unitFile = %s; }" % (os.path.join(FLAKE_DIR, "firstboot-unit.nix"), unit)],
        capture_output=True, text=True, check=False)
    assert result.returncode != 0
    debian_exec_start = "ExecStart=/usr/bin/python3 -I /usr/local/lib/pre-nixos/pre_nixos_firstboot.py"
    assert "has no line '%s'" % debian_exec_start in result.stderr


def test_the_flake_reads_the_debian_files_by_relative_path_and_holds_no_copy_of_them():
    with open(os.path.join(FLAKE_DIR, "image.nix")) as handle:
        image = handle.read()
    with open(os.path.join(FLAKE_DIR, "firstboot-unit.nix")) as handle:
        unit = handle.read()
    with open(os.path.join(FLAKE_DIR, "sshd-settings.nix")) as handle:
        sshd = handle.read()
    assert "../firstboot/pre_nixos_firstboot.py" in image
    assert "../os-layer/rootfs/etc/systemd/network/90-pre-nixos-dhcp.network" in image
    assert "unitFile ? ../firstboot/pre-nixos.service" in unit
    assert "dropIn ? ../os-layer/rootfs/etc/ssh/sshd_config.d/00-pre-nixos.conf" in sshd
    debian_files = [FIRSTBOOT_UNIT, FIRSTBOOT_WRAPPER, SSHD_DROP_IN, DHCP_NETWORK]
    for path in debian_files:
        assert os.path.isfile(path), "the Debian image's %s is missing" % path
    debian_contents = set()
    for path in debian_files:
        with open(path, "rb") as handle:
            debian_contents.add(handle.read())
    for name in os.listdir(FLAKE_DIR):
        with open(os.path.join(FLAKE_DIR, name), "rb") as handle:
            assert handle.read() not in debian_contents, "iso/nixos/%s is a copy of a Debian image file" % name


@needs_nix
def test_the_image_boots_sshd_with_the_debian_drop_ins_settings_which_the_installed_system_also_enforces():
    with open(SSHD_DROP_IN) as handle:
        drop_in = dict(line.split(None, 1) for line in handle.read().splitlines()
                       if line.strip() and not line.lstrip().startswith("#"))
    settings = evaluate("-E", "import %s { }" % os.path.join(FLAKE_DIR, "sshd-settings.nix"))
    assert settings == nixos.ssh_settings_for_nixos(drop_in)
    installed = nixos.ssh_settings_for_nixos(nixos.DEFAULT_SSH_SETTINGS)
    assert {key: installed[key] for key in settings} == settings


@needs_nix
def test_keys_nix_keeps_key_lines_and_drops_blank_lines_and_comments():
    text = "# operator\n%s\n\n  # old key\n \nssh-rsa AAAAB3 other\n" % KEY
    assert evaluate("-E", "import %s %s" % (os.path.join(FLAKE_DIR, "keys.nix"), nixos.nix_string(text))) == [
        KEY, "ssh-rsa AAAAB3 other"]


# The collection the image carries

@needs_nix
def test_the_image_carries_the_collection_as_ansible_galaxy_would_build_it():
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        build_ignore = yaml.safe_load(handle)["build_ignore"]
    paths = {
        "galaxy.yml": True, "plugins/modules/nixos_config.py": True, "roles/nixos_install/tasks/main.yml": True,
        "playbooks/first_boot.yml": True, "meta/runtime.yml": True, "tests/unit/test_nixos_flake.py": True,
        ".venv": False, "build": False, "collections": False, ".git": False, ".ci": False, ".config": False,
        "molecule": False,
        "iso": False, ".pytest_cache": False, ".ruff_cache": False, ".hypothesis": False,
        "plugins/modules/__pycache__": False, "prenixos-baseline-0.1.0.tar.gz": False,
        "Makefile": False, "ansible.cfg": False, "inventory": False, "tools": False, ".ansible-lint": False,
        "ruff.toml": False, ".gitignore": False, "requirements.txt": False,
    }
    # The filter mirrors galaxy.yml: a new build_ignore entry must be added to collection-filter.nix too.
    assert sorted(build_ignore) == sorted([".venv", "build", "collections", ".git", ".ci", ".config", "molecule", "iso",
                                           "*.tar.gz", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                           "**/__pycache__", "Makefile", "ansible.cfg", "inventory", "tools",
                                           ".ansible-lint", "ruff.toml", ".gitignore", "requirements.txt"])
    expression = "let keep = import %s \"/repo\"; in map (path: keep (\"/repo/\" + path) \"regular\") %s" % (
        os.path.join(FLAKE_DIR, "collection-filter.nix"), "[ %s ]" % " ".join(nixos.nix_string(p) for p in paths))
    assert evaluate("-E", expression) == list(paths.values())


# The build script

FAKE_NIX = """#!/bin/sh
echo "$*" > "{calls}"
cp "$PRENIXOS_AUTHORIZED_KEYS" "{keys_seen}"
while [ $# -gt 0 ]; do
  if [ "$1" = --out-link ]; then mkdir -p "$2/iso" && echo fake > "$2/iso/nixos-24.11-x86_64-linux.iso"; fi
  shift
done
"""


def run_build(tmp_path, env=None, with_nix=True):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    if with_nix:
        (fake_bin / "nix").write_text(FAKE_NIX.format(calls=tmp_path / "nix-args", keys_seen=tmp_path / "keys-seen"))
        (fake_bin / "nix").chmod(0o755)
    path = "%s:%s" % (fake_bin, "/usr/bin:/bin") if with_nix else str(fake_bin)
    if not with_nix:
        for tool in ("dirname", "bash"):
            (fake_bin / tool).symlink_to("/usr/bin/" + tool)
    environment = {"PATH": path, "BUILD_DIR": str(tmp_path / "build"), "HOME": str(tmp_path)}
    environment.update(env or {})
    return subprocess.run(["/usr/bin/bash", os.path.join(FLAKE_DIR, "build.sh")], capture_output=True, text=True,
                          env=environment, check=False)


def test_the_build_script_makes_a_key_pair_when_none_is_given_and_builds_the_flake(tmp_path):
    result = run_build(tmp_path)
    assert result.returncode == 0, result.stderr
    build = tmp_path / "build"
    assert (build / "id_ed25519").exists()
    assert (tmp_path / "keys-seen").read_text() == (build / "id_ed25519.pub").read_text()
    assert (tmp_path / "nix-args").read_text().split() == [
        "--extra-experimental-features", "nix-command", "flakes", "build", "--impure",
        "--out-link", str(build / "nixos/result"), "%s#iso" % FLAKE_DIR]
    assert (build / "pre-nixos-nixos.iso").read_text() == "fake\n"
    assert "made a key pair for this build: %s/id_ed25519" % build in result.stderr


def test_the_build_script_bakes_in_the_given_keys_without_their_comments(tmp_path):
    first, second = tmp_path / "a.pub", tmp_path / "b.pub"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "a")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "b")], check=True)
    second.write_text("# my laptop\n\n" + second.read_text())
    result = run_build(tmp_path, env={"SSH_KEY": "%s %s" % (first, second),
                                      "NIX_BUILD_ARGS": "--override-input nixpkgs github:NixOS/nixpkgs/nixos-25.05"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keys-seen").read_text() == first.read_text() + second.read_text().split("\n", 2)[2]
    assert not (tmp_path / "build" / "id_ed25519").exists()
    assert "--override-input nixpkgs github:NixOS/nixpkgs/nixos-25.05" in (tmp_path / "nix-args").read_text()


def test_the_build_script_refuses_a_file_that_is_not_a_public_key(tmp_path):
    bogus = tmp_path / "bogus.pub"
    bogus.write_text("not a key\n")
    result = run_build(tmp_path, env={"SSH_KEY": str(bogus)})
    assert result.returncode == 1
    assert "SSH_KEY: %s is not a public key" % bogus in result.stderr
    assert not (tmp_path / "nix-args").exists()


def test_the_build_script_says_nix_is_needed_when_it_is_missing(tmp_path):
    result = run_build(tmp_path, with_nix=False)
    assert result.returncode == 1
    assert result.stderr.startswith("iso/nixos/build.sh needs Nix (https://nixos.org/download)")
