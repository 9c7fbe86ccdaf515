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
    - network: systemd-networkd as the lan module sets up the live network: a ``.link`` that names the NIC
      with the LAN MAC ``lan`` (its permanent MAC when the LAN facts have one, as the lan module's own
      ``.link`` does), or ``lan-port`` with the VLAN ``lan`` on it; DHCP and IPv6 router advertisements on
      ``lan``, or the static addresses (IPv4 and/or IPv6), gateways and DNS servers. The settings given win
      over the LAN facts' ``settings`` (``lan_settings``), both checked by ``addressing``;
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

import re
import shlex

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing
from ansible_collections.prenixos.baseline.plugins.module_utils.addressing import AddressError
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

def facts_mac(lan, key):
    """A MAC of the LAN facts, in any notation, as ``52:54:00:ab:cd:ef``."""
    try:
        return addressing.mac(lan.get(key))
    except AddressError as error:
        raise NixosConfigError("the LAN MAC address (%s of the LAN facts): %s" % (key, error)) from None


def link_match(lan):
    """The ``.link`` match, as the lan module writes it: the permanent MAC, else (the driver made one up)
    the current MAC."""
    # A null that went through a template may arrive as "None" (older ansible-core): it is still no MAC.
    if lan.get("permanent_mac") not in (None, "", "None", "none", "null"):
        return {"PermanentMACAddress": facts_mac(lan, "permanent_mac")}
    return {"MACAddress": facts_mac(lan, "mac")}


def given(value):
    return value not in (None, "", [], ())


def lan_settings(lan=None, address=None, gateway=None, dns=None, vlan=None):
    """The settings of ``lan`` on the installed system, as :func:`addressing.lan_settings` returns them.

    Each value given here wins over the LAN facts' ``settings`` (the network the image was reached on, so
    the installed system comes up on it too); what neither gives is DHCP, no DNS server of our own, no
    VLAN. An address given here brings its own gateway (none unless given); ``vlan`` 0 is no VLAN.
    """
    known = (lan or {}).get("settings") or {}
    if not isinstance(known, dict):
        raise NixosConfigError("the LAN facts' settings %r are not a mapping" % (known,))
    if known:
        try:
            known = addressing.lan_settings(addresses=known.get("addresses"), gateways=known.get("gateways"),
                                            dns=known.get("dns"), vlan=known.get("vlan"))
        except AddressError as error:
            raise NixosConfigError("the LAN facts' settings are not usable: %s" % error) from None
    if given(address):
        addresses, gateways = address, gateway
    else:
        addresses = known.get("addresses")
        gateways = gateway if given(gateway) else known.get("gateways")
    try:
        return addressing.lan_settings(
            addresses=addresses,
            gateways=gateways,
            dns=dns if given(dns) else known.get("dns"),
            vlan=vlan if given(vlan) else known.get("vlan"),
        )
    except AddressError as error:
        raise NixosConfigError(str(error)) from None


def addressing_config(settings):
    """What ``lan`` (or, with no LAN facts, every Ethernet NIC) runs, as the lan module's ``.network`` says
    it: DHCP and router advertisements, or the static addresses and gateways (router advertisements only
    while no static IPv6 address is given); the operator's DNS servers either way."""
    if addressing.is_static(settings):
        accept_ra = "no" if 6 in addressing.static_ip_versions(settings) else "yes"
        network = {"networkConfig": {"DHCP": "no", "IPv6AcceptRA": accept_ra}, "address": list(settings["addresses"])}
        if settings["gateways"]:
            network["gateway"] = list(settings["gateways"])
    else:
        # The client identified by its MAC, as on the image: a DHCP reservation finds the machine again.
        network = {"networkConfig": {"DHCP": "yes", "IPv6AcceptRA": "yes"},
                   "dhcpV4Config": {"ClientIdentifier": "mac"}}
    if settings["dns"]:
        network["dns"] = list(settings["dns"])
    return network


def interface_name(name):
    if not INTERFACE_PATTERN.match(str(name)):
        raise NixosConfigError("the interface name %r is not a valid Linux interface name" % name)
    return str(name)


def network_settings(lan=None, settings=None):
    """systemd-networkd as the lan module sets up the live network: the NIC with the LAN MAC is named
    ``lan``, or, with a VLAN, ``lan-port`` carrying the tagged interface ``lan``; ``lan`` runs DHCP or the
    static settings (``settings`` as :func:`lan_settings` returns them; ``None`` is DHCP)."""
    settings = settings or addressing.lan_settings()
    result = [
        (("networking", "useNetworkd"), True),
        (("networking", "useDHCP"), False),
        (("systemd", "network", "enable"), True),
    ]
    if not lan:
        if addressing.is_static(settings) or settings["vlan"]:
            raise NixosConfigError(
                "a static address or a VLAN needs the LAN facts (the MAC of the NIC to configure)")
        network = {"matchConfig": {"Type": "ether"}}
        network.update(addressing_config(settings))
        result.append((("systemd", "network", "networks", "90-ethernet-dhcp"), network))
        return result
    name = interface_name(lan.get("name") or LAN_NAME)
    vlan = settings["vlan"]
    nic = interface_name(addressing.port_name(name)) if vlan else name
    result.append(
        (("systemd", "network", "links", "10-%s" % nic), {"matchConfig": link_match(lan), "linkConfig": {"Name": nic}})
    )
    if vlan:
        result.append(
            (
                ("systemd", "network", "netdevs", "10-%s" % name),
                {"netdevConfig": {"Name": name, "Kind": "vlan"}, "vlanConfig": {"Id": vlan}},
            )
        )
        # The port only carries the VLAN: no address of its own, not even a link-local one.
        result.append(
            (
                ("systemd", "network", "networks", "10-%s" % nic),
                {
                    "matchConfig": {"Name": nic},
                    "networkConfig": {"VLAN": [name], "LinkLocalAddressing": "no", "IPv6AcceptRA": "no",
                                      "DHCP": "no"},
                    "linkConfig": {"RequiredForOnline": "carrier"},
                },
            )
        )
    network = {"matchConfig": {"Name": name}}
    network.update(addressing_config(settings))
    network["linkConfig"] = {"RequiredForOnline": "routable"}
    result.append((("systemd", "network", "networks", "10-%s" % name), network))
    return result


def addressing_words(settings):
    """``DHCP for IPv4, router advertisements for IPv6`` or ``static 192.0.2.10/24 via 192.0.2.1, ...``."""
    if not addressing.is_static(settings):
        words = "DHCP for IPv4, router advertisements for IPv6"
    else:
        words = "static %s" % " and ".join(settings["addresses"])
        words += " via %s" % " and ".join(settings["gateways"]) if settings["gateways"] else ", no gateway"
        versions = addressing.static_ip_versions(settings)
        words += ", no IPv6 router advertisements" if 6 in versions else ", IPv6 from router advertisements"
        if 4 not in versions:
            words += ", no IPv4"
    if settings["dns"]:
        words += "; DNS %s" % " and ".join(settings["dns"])
    return words


def network_comment(lan, settings=None):
    """The network part's comment lines: which NIC, what name, VLAN, static or DHCP, IPv6, DNS."""
    settings = settings or addressing.lan_settings()
    if not lan:
        return ["Network (systemd-networkd): no LAN facts were given, so no NIC is renamed and every Ethernet NIC",
                "runs %s." % addressing_words(settings)]
    mac = next(iter(link_match(lan).values()))
    name = lan.get("name") or LAN_NAME
    if settings["vlan"]:
        nic = "is named %s and carries VLAN %d, tagged, as %s" % (addressing.port_name(name), settings["vlan"], name)
    else:
        nic = "is named %s" % name
    seen = ""
    if lan.get("address") and not addressing.is_static(settings):
        seen = " (it had %s/%s at install time)" % (lan.get("address"), lan.get("prefix"))
    return ["Network (systemd-networkd): the NIC with MAC %s %s." % (mac, nic),
            "%s: %s%s." % (name, addressing_words(settings), seen)]


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
                     ssh=None, vlan=None):
    """``/etc/nixos/pre-nixos.nix`` for the installed system (see the module docstring; ``address``,
    ``gateway``, ``dns`` and ``vlan`` as :func:`lan_settings` takes them)."""
    keys = check_authorized_keys(authorized_keys)
    hostname = check_hostname(hostname)
    network = lan_settings(lan, address, gateway, dns, vlan)

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
    for line in network_comment(lan, network):
        body.comment(line)
    for path, value in network_settings(lan, network):
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
