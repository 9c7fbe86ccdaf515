#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: nixos_config
short_description: Write the NixOS configuration that matches this machine's disks, network and SSH
version_added: "0.1.0"
description:
  - Renders, from the storage plan, the LAN facts and root's public keys, a NixOS module for the system
    that C(nixos-install) will put on the disks, and writes it to C(<root>/etc/nixos/pre-nixos.nix).
  - "The module mounts every filesystem and the swap by label (forced over the by-uuid entries of
    C(hardware-configuration.nix)), enables mdadm (C(HOMEHOST <ignore>), so arrays made on the boot image
    assemble) and LVM in the initrd, installs systemd-boot on the ESP labelled C(EFI) and copies it to the
    spare ESPs after every install, puts the kernel console on the screen and C(ttyS0), names the NIC with
    the LAN MAC C(lan) through a systemd-networkd C(.link) and configures it by DHCP (or with the static
    address given), and lets root in over SSH with the given keys only, the firewall open for SSH alone."
  - When C(<root>/etc/nixos/configuration.nix) is missing, writes a minimal one that imports
    C(./pre-nixos.nix) and, when present, C(./hardware-configuration.nix), and holds C(system.stateVersion).
    C(nixos-generate-config) keeps an existing C(configuration.nix), so nothing generated needs a hand edit.
    An existing C(configuration.nix) is never changed; when it does not import C(pre-nixos.nix) the result
    says so and a warning tells what to add.
  - Optionally also writes the plan as a disko layout to C(<root>/etc/nixos/disko.nix) (not imported).
  - Files are written atomically and only when their content differs.
author: pre-nixos baseline engineers (@prenixos)
options:
  plan:
    description:
      - The storage plan, as M(prenixos.baseline.storage_plan) returns it (version 2; version 1 is still read).
    type: dict
    required: true
  lan:
    description:
      - The LAN facts M(prenixos.baseline.lan) returns (C(name), C(mac), C(address), C(prefix), ...).
        C(mac) (or C(permanent_mac)) is required in it; C(name) defaults to C(lan).
      - When not given, every Ethernet NIC of the installed system asks for DHCP, and no NIC is renamed.
    type: dict
  authorized_keys:
    description:
      - Public key lines root may log in with on the installed system. At least one.
    type: list
    elements: str
    required: true
  root:
    description:
      - Where the installed system's root filesystem is mounted.
    type: path
    default: /mnt
  require_mounted:
    description:
      - Refuse to write unless O(root) is a mount point, so the configuration never lands on the live
        system when the plan's filesystems are not mounted.
    type: bool
    default: true
  address:
    description:
      - A static address with its prefix length (C(192.0.2.10/24)) for C(lan) instead of DHCP. Needs O(lan).
    type: str
  gateway:
    description:
      - The default gateway for the static address.
    type: str
  dns:
    description:
      - DNS servers for the static address.
    type: list
    elements: str
  hostname:
    description:
      - The installed system's host name (C(networking.hostName), as C(lib.mkDefault)). NixOS's default when not set.
    type: str
  state_version:
    description:
      - C(system.stateVersion) written into a new C(configuration.nix). Never changes an existing one.
    type: str
    default: "24.11"
  ssh_settings:
    description:
      - sshd settings for the installed system (C(yes)/C(no) become NixOS booleans).
      - Defaults to the hardened set of the C(ssh_hardening) role.
    type: dict
  disko:
    description:
      - Also write the plan as a disko C(disko.devices) layout to C(<root>/etc/nixos/disko.nix).
    type: bool
    default: false
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  diff_mode:
    description: Returns each file's content before and after.
"""

EXAMPLES = r"""
- name: Write the NixOS configuration for the disks mounted under /mnt
  prenixos.baseline.nixos_config:
    plan: "{{ lookup('ansible.builtin.file', '/var/log/pre-nixos/plan.json') | from_json }}"
    lan: "{{ __lan_result.lan }}"
    authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl operator@desk
    hostname: web1

- name: Same, with a static address and a disko layout next to it
  prenixos.baseline.nixos_config:
    plan: "{{ storage_plan.plan }}"
    lan: {mac: "52:54:00:12:34:56"}
    authorized_keys: "{{ prenixos_ssh_authorized_keys }}"
    address: 192.0.2.10/24
    gateway: 192.0.2.1
    dns: [192.0.2.53]
    disko: true
"""

RETURN = r"""
path:
  description: The NixOS module written (or, in check mode, that would be written).
  returned: always
  type: str
  sample: /mnt/etc/nixos/pre-nixos.nix
nixos:
  description: The content of O(root)/etc/nixos/pre-nixos.nix.
  returned: always
  type: str
configuration_path:
  description: The C(configuration.nix) that imports the module.
  returned: always
  type: str
  sample: /mnt/etc/nixos/configuration.nix
configuration_state:
  description: C(written) when this run wrote it (or would, in check mode), C(kept) when it existed.
  returned: always
  type: str
  sample: written
configuration_imports_pre_nixos:
  description: Whether C(configuration.nix) (written or existing) imports C(./pre-nixos.nix).
  returned: always
  type: bool
  sample: true
disko_path:
  description: The disko layout written.
  returned: when O(disko) is true
  type: str
  sample: /mnt/etc/nixos/disko.nix
files:
  description: Every file this module manages, and whether this run changed (or would change) it.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /mnt/etc/nixos/pre-nixos.nix, changed: true}
    - {path: /mnt/etc/nixos/configuration.nix, changed: false}
install_tools:
  description: Where this host has C(nixos-generate-config) and C(nixos-install) (null when missing, as on Debian).
  returned: always
  type: dict
  sample: {nixos-generate-config: null, nixos-install: null}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils.disko import render_disko
from ansible_collections.prenixos.baseline.plugins.module_utils.files import read_text, write_text
from ansible_collections.prenixos.baseline.plugins.module_utils.nixos import (
    NixosConfigError,
    imports_pre_nixos,
    render_configuration,
    render_pre_nixos,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import READABLE_PLAN_VERSIONS

INSTALL_TOOLS = ("nixos-generate-config", "nixos-install")


def render(params):
    """``(pre-nixos.nix, configuration.nix for a fresh install, disko.nix or None)``."""
    plan = params["plan"]
    if plan.get("version") not in READABLE_PLAN_VERSIONS:
        raise NixosConfigError("this module reads storage plans of versions %s, not %r"
                               % (" and ".join(map(str, READABLE_PLAN_VERSIONS)), plan.get("version")))
    pre_nixos = render_pre_nixos(
        plan,
        params["authorized_keys"],
        lan=params["lan"],
        address=params["address"],
        gateway=params["gateway"],
        dns=params["dns"],
        hostname=params["hostname"],
        ssh=params["ssh_settings"],
    )
    configuration = render_configuration(params["state_version"])
    disko = render_disko(plan) if params["disko"] else None
    return pre_nixos, configuration, disko


def main():
    module = AnsibleModule(
        argument_spec={
            "plan": {"type": "dict", "required": True},
            "lan": {"type": "dict"},
            "authorized_keys": {"type": "list", "elements": "str", "required": True, "no_log": False},
            "root": {"type": "path", "default": "/mnt"},
            "require_mounted": {"type": "bool", "default": True},
            "address": {"type": "str"},
            "gateway": {"type": "str"},
            "dns": {"type": "list", "elements": "str"},
            "hostname": {"type": "str"},
            "state_version": {"type": "str", "default": "24.11"},
            "ssh_settings": {"type": "dict"},
            "disko": {"type": "bool", "default": False},
        },
        required_by={"gateway": "address", "dns": "address", "address": "lan"},
        supports_check_mode=True,
    )
    params = module.params
    root = params["root"]
    if params["require_mounted"] and not os.path.ismount(root):
        module.fail_json(
            msg="%s is not a mount point: the planned filesystems are not mounted there (apply the storage plan "
            "first), and writing the configuration now would put it on the live system" % root
        )
    try:
        pre_nixos, configuration, disko = render(params)
    except (NixosConfigError, KeyError, TypeError, StopIteration) as error:
        reason = "the plan lacks %s" % error if isinstance(error, KeyError) else str(error) or "malformed plan"
        module.fail_json(msg="cannot write the NixOS configuration: %s" % reason)

    etc_nixos = os.path.join(root, "etc", "nixos")
    path = os.path.join(etc_nixos, "pre-nixos.nix")
    configuration_path = os.path.join(etc_nixos, "configuration.nix")
    wanted = [(path, pre_nixos)]
    existing_configuration = read_text(configuration_path)
    if existing_configuration is None:
        wanted.append((configuration_path, configuration))
        configuration_state = "written"
        imports_ok = True
    else:
        configuration_state = "kept"
        imports_ok = imports_pre_nixos(existing_configuration)
        if not imports_ok:
            module.warn(
                "%s exists and does not import ./pre-nixos.nix; add it to its imports "
                "(imports = [ ./hardware-configuration.nix ./pre-nixos.nix ];) or the installed system will not "
                "know its disks, network and keys" % configuration_path
            )
    if disko is not None:
        wanted.append((os.path.join(etc_nixos, "disko.nix"), disko))

    files = []
    diffs = []
    for file_path, content in wanted:
        before = read_text(file_path) if file_path != configuration_path else None
        changed = before != content
        files.append({"path": file_path, "changed": changed})
        if changed:
            diffs.append(
                {"before_header": file_path, "before": before or "", "after_header": file_path, "after": content}
            )
            if not module.check_mode:
                try:
                    write_text(module, file_path, content)
                except OSError as error:
                    module.fail_json(msg=str(error), files=files)
    if existing_configuration is not None:
        files.append({"path": configuration_path, "changed": False})

    result = {
        "changed": any(entry["changed"] for entry in files),
        "path": path,
        "nixos": pre_nixos,
        "configuration_path": configuration_path,
        "configuration_state": configuration_state,
        "configuration_imports_pre_nixos": imports_ok,
        "files": files,
        "install_tools": {tool: module.get_bin_path(tool) for tool in INSTALL_TOOLS},
    }
    if disko is not None:
        result["disko_path"] = os.path.join(etc_nixos, "disko.nix")
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
