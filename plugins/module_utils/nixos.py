# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render what NixOS needs to know about this machine, from the storage plan, the LAN facts and root's keys.

Pure: no command, no file, no I/O. Every function takes plain data and returns text.

``render_pre_nixos(plan, authorized_keys, lan=None, ...)``
    ``/etc/nixos/pre-nixos.nix``, a NixOS module ``{ lib, pkgs, ... }: { ... }`` for the installed system:

    - storage: ``fileSystems`` and ``swapDevices`` by label, forced (``lib.mkForce``) over the by-uuid
      entries ``nixos-generate-config`` writes into ``hardware-configuration.nix``; ``boot.swraid`` with an
      ``mdadm.conf`` that assembles arrays made under another host name (``HOMEHOST <ignore>``); the RAID
      modules and LVM in the initrd;
    - boot: systemd-boot on the ESP labelled ``EFI`` at ``/boot``; after each bootloader install the spare
      ESPs (``EFI2``, ...) get a copy of it, so any disk of ``main`` can boot through the firmware's
      fallback path;
    - console: ``console=tty0 console=ttyS0,115200n8`` (screen and first serial port);
    - network: systemd-networkd, a ``.link`` that names the NIC with the LAN MAC ``lan`` (its permanent MAC
      when the LAN facts have one, as the lan module's own ``.link`` does), and DHCP on it
      (or the static address, gateway and DNS given);
    - SSH: root with the given keys only, the hardened sshd settings, the firewall on with only SSH open.

    Settings an operator may well want to change in ``configuration.nix`` (boot loader, host name) are
    ``lib.mkDefault``; the storage is ``lib.mkForce``; the rest is a plain definition.

``render_storage(plan)``
    The storage part of ``pre-nixos.nix`` alone, as a NixOS module ``{ lib, ... }: { ... }``: the same
    settings, from the same function (``storage_settings``). ``storage_plan`` returns it as ``nixos``.

``render_configuration(state_version)``
    A minimal ``/etc/nixos/configuration.nix`` that imports ``./pre-nixos.nix`` and, when present,
    ``./hardware-configuration.nix``; it holds ``system.stateVersion``. Written once, never overwritten.

The same layout as a disko expression is ``disko.render_disko``; the Nix syntax all of them write is
``nix_syntax``.

Every string that goes into Nix is escaped (``nix_string``, ``nix_indented``); every attribute name is
quoted when it is not a plain identifier (``nix_attr``). Values that end up in a shell script are also
shell-quoted. Inputs that cannot be meant (a MAC that is not a MAC, a key that is not a key, a host
name NixOS would refuse) raise ``NixosConfigError`` with a message that names the value.
"""
from __future__ import annotations

import ipaddress
import re
import shlex

from ansible_collections.prenixos.baseline.plugins.module_utils.nix_syntax import (
    ModuleWriter,
    NixExpr,
    NixIndented,
    NixosConfigError,
    mk_default,
    mk_force,
    nix_comment,
    nix_string,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.sshd import check_public_key

RAID_KERNEL_MODULES = {"raid0": "raid0", "raid1": "raid1", "raid5": "raid456", "raid6": "raid456"}

SERIAL_CONSOLE_PARAMS = ("console=tty0", "console=ttyS0,115200n8")
ESP_MOUNT_OPTIONS = ("fmask=0077", "dmask=0077")
# Arrays are created on the boot image, under its host name; the installed system must still assemble them.
MDADM_CONF = "HOMEHOST <ignore>\nMAILADDR root\n"
LAN_NAME = "lan"
DEFAULT_STATE_VERSION = "24.11"

# The same hardened set as roles/ssh_hardening/defaults/main.yml (a unit test keeps them equal).
DEFAULT_SSH_SETTINGS = {
    "PermitRootLogin": "prohibit-password",
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitEmptyPasswords": "no",
    "AuthenticationMethods": "publickey",
    "PubkeyAuthentication": "yes",
    "MaxAuthTries": 5,
    "LoginGraceTime": 30,
    "X11Forwarding": "no",
    "AllowAgentForwarding": "no",
    "PermitUserEnvironment": "no",
    "KexAlgorithms": (
        "sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
        "curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,"
        "diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256"
    ),
    "Ciphers": (
        "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
        "aes256-ctr,aes192-ctr,aes128-ctr"
    ),
    "MACs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
    "HostKeyAlgorithms": "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-256",
}
# The sshd settings NixOS types as lists of strings, under the names NixOS gives them.
NIXOS_SSH_LISTS = {"KexAlgorithms": "KexAlgorithms", "Ciphers": "Ciphers", "MACs": "Macs"}

MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
INTERFACE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,15}\Z")
# NixOS's own check on networking.hostName.
HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\Z")
STATE_VERSION_PATTERN = re.compile(r"^[0-9]{2}\.[0-9]{2}\Z")
SSH_KEYWORD_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]*\Z")


# The storage plan, as NixOS sees it

def storage_mounts(plan):
    """``(mountpoint, label, fsType, options)`` for every mounted filesystem of the plan, by mount point."""
    found = [
        (lv["mountpoint"], lv["label"], lv["filesystem"], [])
        for lv in plan["logical_volumes"]
        if lv["mountpoint"]
    ]
    found += [
        (p["mountpoint"], p["label"], p["filesystem"], list(ESP_MOUNT_OPTIONS))
        for p in plan["partitions"]
        if p["filesystem"] and p["mountpoint"]
    ]
    return sorted(found)


def swap_labels(plan):
    return [lv["label"] for lv in plan["logical_volumes"] if lv["filesystem"] == "swap"]


def boot_esp(plan):
    """The ESP the bootloader lives on (the one with a mount point), or None."""
    return next((p for p in plan["partitions"] if p["filesystem"] == "vfat" and p["mountpoint"]), None)


def spare_esps(plan):
    """Labels of the ESPs that are not mounted: the other disks of ``main``."""
    return [p["label"] for p in plan["partitions"] if p["filesystem"] == "vfat" and not p["mountpoint"]]


def raid_kernel_modules(plan):
    if not plan["arrays"]:
        return []
    return sorted({"md_mod"} | {RAID_KERNEL_MODULES[array["level"]] for array in plan["arrays"]})


def storage_settings(plan):
    """The storage part of the module as ``(path, value)`` pairs (values use ``lib.mkForce`` where
    ``hardware-configuration.nix`` defines the same thing by UUID)."""
    settings = []
    for mountpoint, label, fs_type, options in storage_mounts(plan):
        entry = {"device": "/dev/disk/by-label/" + label, "fsType": fs_type}
        if options:
            entry["options"] = options
        settings.append((("fileSystems", mountpoint), mk_force(entry)))
    settings.append((("swapDevices",), mk_force([{"label": label} for label in swap_labels(plan)])))
    if plan["arrays"]:
        settings.append((("boot", "swraid", "enable"), True))
        settings.append((("boot", "swraid", "mdadmConf"), NixIndented(MDADM_CONF)))
        settings.append((("boot", "initrd", "availableKernelModules"), raid_kernel_modules(plan)))
    settings.append((("boot", "initrd", "services", "lvm", "enable"), True))
    return settings


def esp_sync_script(esp_mountpoint, labels):
    """Shell run after every systemd-boot install: copy the ESP to each spare ESP, by label."""
    return NixIndented(
        "# Keep the spare ESPs a copy of %s so that any disk of main can boot (firmware fallback path).\n"
        % esp_mountpoint,
        "for label in %s; do\n" % " ".join(shlex.quote(label) for label in labels),
        '  device="/dev/disk/by-label/$label"\n',
        '  if [ ! -e "$device" ]; then echo "pre-nixos: spare ESP $label not found, not synced" >&2; continue; fi\n',
        "  target=$(",
        NixExpr("pkgs.coreutils"),
        "/bin/mktemp -d)\n",
        "  if ",
        NixExpr("pkgs.util-linux"),
        '/bin/mount -t vfat "$device" "$target"; then\n',
        "    ",
        NixExpr("pkgs.rsync"),
        "/bin/rsync -rt --modify-window=1 --delete %s/ \"$target\"/ || echo \"pre-nixos: syncing $label failed\" >&2\n"
        % shlex.quote(esp_mountpoint),
        "    ",
        NixExpr("pkgs.util-linux"),
        '/bin/umount "$target"\n',
        "  fi\n",
        "  ",
        NixExpr("pkgs.coreutils"),
        '/bin/rmdir "$target"\n',
        "done\n",
    )


def boot_settings(plan):
    esp = boot_esp(plan)
    if esp is None:
        raise NixosConfigError("the plan has no mounted EFI system partition: there is nowhere to put systemd-boot")
    settings = [
        (("boot", "loader", "systemd-boot", "enable"), mk_default(True)),
        (("boot", "loader", "efi", "canTouchEfiVariables"), mk_default(True)),
        (("boot", "loader", "efi", "efiSysMountPoint"), esp["mountpoint"]),
    ]
    spares = spare_esps(plan)
    if spares:
        settings.append(
            (("boot", "loader", "systemd-boot", "extraInstallCommands"), esp_sync_script(esp["mountpoint"], spares))
        )
    return settings


# Network

def normalise_mac(mac):
    text = str(mac or "").strip().lower().replace("-", ":")
    if not MAC_PATTERN.match(text):
        raise NixosConfigError("the LAN MAC address %r is not a MAC address (expected six hex pairs)" % mac)
    return text


def link_match(lan):
    """The ``.link`` match, as the lan module writes it: the permanent MAC, else (the driver made one up)
    the current MAC."""
    # A null that went through a template may arrive as "None" (older ansible-core): it is still no MAC.
    if lan.get("permanent_mac") not in (None, "", "None", "none", "null"):
        return {"PermanentMACAddress": normalise_mac(lan["permanent_mac"])}
    return {"MACAddress": normalise_mac(lan.get("mac"))}


def check_static_network(address, gateway, dns):
    """``(address/prefix, gateway or None, [dns])`` checked; raises NixosConfigError on a bad value."""
    try:
        interface = ipaddress.ip_interface(address)
    except ValueError:
        raise NixosConfigError(
            "the static address %r is not an address with a prefix (like 192.0.2.10/24)" % address
        ) from None
    if "/" not in str(address):
        raise NixosConfigError("the static address %r needs its prefix length (like 192.0.2.10/24)" % address)
    checked_gateway = None
    if gateway:
        try:
            checked_gateway = ipaddress.ip_address(gateway)
        except ValueError:
            raise NixosConfigError("the gateway %r is not an IP address" % gateway) from None
        if checked_gateway.version != interface.version:
            raise NixosConfigError("the gateway %s is not of the same IP version as %s" % (gateway, address))
    servers = []
    for server in dns or []:
        try:
            servers.append(str(ipaddress.ip_address(server)))
        except ValueError:
            raise NixosConfigError("the DNS server %r is not an IP address" % server) from None
    return str(interface), (str(checked_gateway) if checked_gateway else None), servers


def network_settings(lan=None, address=None, gateway=None, dns=None):
    """systemd-networkd: the NIC with the LAN MAC is named ``lan``; DHCP, or the static address given."""
    settings = [
        (("networking", "useNetworkd"), True),
        (("networking", "useDHCP"), False),
        (("systemd", "network", "enable"), True),
    ]
    if not lan:
        if address:
            raise NixosConfigError("a static address needs the LAN facts (the MAC of the NIC to configure)")
        settings.append(
            (
                ("systemd", "network", "networks", "90-ethernet-dhcp"),
                {"matchConfig": {"Type": "ether"}, "networkConfig": {"DHCP": "ipv4"}},
            )
        )
        return settings
    name = lan.get("name") or LAN_NAME
    if not INTERFACE_PATTERN.match(str(name)):
        raise NixosConfigError("the interface name %r is not a valid Linux interface name" % name)
    settings.append(
        (
            ("systemd", "network", "links", "10-%s" % name),
            {"matchConfig": link_match(lan), "linkConfig": {"Name": name}},
        )
    )
    network = {"matchConfig": {"Name": name}}
    if address:
        static_address, static_gateway, servers = check_static_network(address, gateway, dns)
        network["networkConfig"] = {"DHCP": "no"}
        network["address"] = [static_address]
        if static_gateway:
            network["gateway"] = [static_gateway]
        if servers:
            network["dns"] = servers
    else:
        network["networkConfig"] = {"DHCP": "ipv4"}
    network["linkConfig"] = {"RequiredForOnline": "routable"}
    settings.append((("systemd", "network", "networks", "10-%s" % name), network))
    return settings


def network_comment(lan, address):
    if not lan:
        return "Network: no LAN facts were given, so every Ethernet NIC asks for DHCP."
    mac = next(iter(link_match(lan).values()))
    name = lan.get("name") or LAN_NAME
    how = "static address %s" % address if address else "DHCP"
    seen = ""
    if lan.get("address") and not address:
        seen = " (it had %s/%s at install time)" % (lan.get("address"), lan.get("prefix"))
    return "Network: the NIC with MAC %s is named %s and configured by %s through systemd-networkd%s." % (
        mac, name, how, seen)


# SSH

def nixos_ssh_value(key, value):
    """An sshd setting as NixOS's ``services.openssh.settings`` wants it (yes/no become booleans)."""
    if isinstance(value, bool) or isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lower() in ("yes", "true"):
        return True
    if text.lower() in ("no", "false"):
        return False
    if re.match(r"^[0-9]+$", text):
        return int(text)
    if not text or "\n" in text:
        raise NixosConfigError("the sshd setting %s has an unusable value %r" % (key, value))
    return text


def ssh_settings_for_nixos(settings):
    rendered = {}
    for key in sorted(settings):
        if not SSH_KEYWORD_PATTERN.match(str(key)):
            raise NixosConfigError("%r is not an sshd keyword" % key)
        if key in NIXOS_SSH_LISTS:
            rendered[NIXOS_SSH_LISTS[key]] = [nixos_ssh_value(key, item) for item in str(settings[key]).split(",")]
        else:
            rendered[key] = nixos_ssh_value(key, settings[key])
    return rendered


def check_authorized_keys(keys):
    checked = []
    for index, key in enumerate(keys or []):
        if "\n" in str(key) or "\r" in str(key):
            raise NixosConfigError("authorized key %d spans several lines; give one key per list item" % (index + 1))
        try:
            checked.append(check_public_key(key))
        except ValueError as error:
            raise NixosConfigError("authorized key %d is not usable: %s" % (index + 1, error)) from None
    if not checked:
        raise NixosConfigError("no authorized key: the installed system would let nobody in over SSH")
    return checked


def ssh_settings(keys, settings=None):
    return [
        (("services", "openssh", "enable"), True),
        (("services", "openssh", "openFirewall"), True),
        (("services", "openssh", "settings"), ssh_settings_for_nixos(
            DEFAULT_SSH_SETTINGS if settings is None else settings)),
        (("users", "users", "root", "openssh", "authorizedKeys", "keys"), keys),
        (("networking", "firewall", "enable"), True),
    ]


# The files

def check_hostname(hostname):
    if hostname is None or hostname == "":
        return None
    if not HOSTNAME_PATTERN.match(str(hostname)):
        raise NixosConfigError(
            "the host name %r is not one NixOS accepts (letters, digits, '-' and '_', at most 63, "
            "starting and ending with a letter or digit; no dots: put the domain in networking.domain)" % hostname
        )
    return str(hostname)


def render_pre_nixos(plan, authorized_keys, lan=None, address=None, gateway=None, dns=None, hostname=None,
                     ssh=None):
    """``/etc/nixos/pre-nixos.nix`` for the installed system (see the module docstring)."""
    keys = check_authorized_keys(authorized_keys)
    hostname = check_hostname(hostname)
    if (gateway or dns) and not address:
        raise NixosConfigError("a gateway or DNS servers were given without a static address")

    body = ModuleWriter()
    write_storage(body, plan)
    spares = spare_esps(plan)
    body.blank()
    esp = boot_esp(plan)
    if esp is not None and spares:
        body.comment("Boot: systemd-boot on the ESP labelled %s at %s; after each install it is copied to %s."
                     % (esp["label"], esp["mountpoint"], ", ".join(spares)))
    elif esp is not None:
        body.comment("Boot: systemd-boot on the ESP labelled %s at %s." % (esp["label"], esp["mountpoint"]))
    for path, value in boot_settings(plan):
        body.set(path, value)
    body.blank()
    body.comment("Console: kernel messages and a login prompt on the screen and on the first serial port.")
    body.set(("boot", "kernelParams"), list(SERIAL_CONSOLE_PARAMS))
    body.blank()
    body.comment(network_comment(lan, address))
    for path, value in network_settings(lan, address, gateway, dns):
        body.set(path, value)
    if hostname:
        body.set(("networking", "hostName"), mk_default(hostname))
    body.blank()
    body.comment("SSH: root logs in with these keys only; the firewall lets in SSH and nothing else.")
    for path, value in ssh_settings(keys, ssh):
        body.set(path, value)

    header = [
        nix_comment("This machine as pre-nixos baseline found and built it (storage plan version %s)."
                    % plan.get("version")),
        nix_comment("Written by prenixos.baseline.nixos_config and rewritten on every run: make your changes in"),
        nix_comment("configuration.nix (plain definitions there win over the lib.mkDefault ones here)."),
        "{ lib, pkgs, ... }:",
        "{",
    ]
    return "\n".join(header) + "\n" + body.text() + "\n}\n"


def write_storage(body, plan):
    body.comment("Storage: every filesystem and the swap by label (forced over the by-uuid entries of")
    body.comment("hardware-configuration.nix); mdadm and LVM in the initrd.")
    for path, value in storage_settings(plan):
        body.set(path, value)


def render_storage(plan):
    """The storage settings of ``pre-nixos.nix`` as a module of their own (see the module docstring)."""
    body = ModuleWriter()
    write_storage(body, plan)
    spares = spare_esps(plan)
    if spares:
        body.comment("Spare ESPs, not mounted (copy the bootloader there to boot from them): " + ", ".join(spares))
    header = [
        nix_comment("Storage of this machine, generated by prenixos.baseline.storage_plan (plan version %s)."
                    % plan.get("version")),
        nix_comment("The same settings as the storage part of pre-nixos.nix; everything is found by label."),
        "{ lib, ... }:",
        "{",
    ]
    return "\n".join(header) + "\n" + body.text() + "\n}\n"


def render_configuration(state_version=DEFAULT_STATE_VERSION):
    """A minimal ``configuration.nix``: imports pre-nixos.nix (and hardware-configuration.nix when present)."""
    if not STATE_VERSION_PATTERN.match(str(state_version)):
        raise NixosConfigError("the state version %r is not a NixOS release like 24.11" % state_version)
    return "\n".join(
        [
            nix_comment("Your NixOS configuration. Written once by prenixos.baseline.nixos_config, never overwritten."),
            nix_comment("The disks, the network and SSH are in ./pre-nixos.nix; nixos-generate-config writes"),
            nix_comment("./hardware-configuration.nix. Add your own settings below."),
            "{ ... }:",
            "{",
            "  imports = [ ./pre-nixos.nix ] ++ (",
            "    if builtins.pathExists ./hardware-configuration.nix then [ ./hardware-configuration.nix ] else [ ]",
            "  );",
            "",
            "  " + nix_comment("The release first installed here; read the NixOS manual before changing it."),
            "  system.stateVersion = %s;" % nix_string(state_version),
            "}",
            "",
        ]
    )


def imports_pre_nixos(configuration_text):
    """Whether a configuration.nix mentions ./pre-nixos.nix outside comments."""
    for line in configuration_text.splitlines():
        code = line.split("#", 1)[0]
        if re.search(r"(^|[^A-Za-z0-9_.-])\./pre-nixos\.nix\b", code) or "/pre-nixos.nix" in code:
            return True
    return False
