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

``render_disko(plan)``
    The same layout as a disko ``disko.devices`` expression, for people who keep their layout in disko.

Every string that goes into Nix is escaped (``nix_string``, ``nix_indented``); every attribute name is
quoted when it is not a plain identifier (``nix_attr``). Values that end up in a shell script are also
shell-quoted. Inputs that cannot be meant (a MAC that is not a MAC, a key that is not a key, a host
name NixOS would refuse) raise ``NixosConfigError`` with a message that names the value.
"""
from __future__ import annotations

import ipaddress
import re
import shlex

from ansible_collections.prenixos.baseline.plugins.module_utils.sshd import check_public_key

MiB = 1024 ** 2

RAID_KERNEL_MODULES = {"raid0": "raid0", "raid1": "raid1", "raid5": "raid456", "raid6": "raid456"}
DISKO_RAID_LEVELS = {"raid0": 0, "raid1": 1, "raid5": 5, "raid6": 6}

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

NIX_KEYWORDS = frozenset(("if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"))
NIX_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
INTERFACE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
# NixOS's own check on networking.hostName.
HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
STATE_VERSION_PATTERN = re.compile(r"^[0-9]{2}\.[0-9]{2}$")
SSH_KEYWORD_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# disko pastes names and labels into shell scripts unquoted: only these characters are safe there.
DISKO_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class NixosConfigError(ValueError):
    """An input cannot be turned into a NixOS configuration; the message names it."""


# Nix syntax

class NixExpr:
    """A Nix expression written as is (``lib.mkForce``, ``pkgs.rsync``): never escaped, so never user data."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, NixExpr) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return "NixExpr(%r)" % self.text


class NixApply:
    """``function argument``, for ``lib.mkForce { ... }`` and friends."""

    def __init__(self, function, argument):
        self.function = function
        self.argument = argument


class NixIndented:
    """A multi-line string rendered as a Nix indented string; ``parts`` are text or ``NixExpr`` to interpolate."""

    def __init__(self, *parts):
        self.parts = parts


def nix_string(text):
    """A Nix double-quoted string literal: backslash, quote and ``${`` escaped; NUL refused."""
    text = str(text)
    if "\0" in text:
        raise NixosConfigError("a NUL character cannot be part of a Nix string: %r" % text)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"%s"' % escaped


def nix_list(items):
    """A one-line Nix list of strings."""
    return "[ %s ]" % " ".join(nix_string(item) for item in items) if items else "[ ]"


def nix_attr(name):
    """An attribute name: bare when it is a plain identifier, else a quoted string."""
    name = str(name)
    if NIX_IDENTIFIER.match(name) and name not in NIX_KEYWORDS:
        return name
    return nix_string(name)


def nix_attr_path(path):
    return ".".join(nix_attr(element) for element in path)


def indented_items(value):
    """The characters and interpolations of a ``NixIndented``, as one list."""
    items = []
    for part in value.parts:
        if isinstance(part, NixExpr):
            items.append(part)
            continue
        if "\0" in part:
            raise NixosConfigError("a NUL character cannot be part of a Nix string: %r" % part)
        items.extend(part)
    return items


def split_lines(items):
    lines = [[]]
    for item in items:
        if item == "\n":
            lines.append([])
        else:
            lines[-1].append(item)
    return lines


def spaces_to_escape(lines):
    """Lines whose first space must be escaped so that Nix strips exactly the padding and keeps the rest.

    Nix strips the smallest indentation of the lines that hold more than spaces, and drops a last line of
    spaces only. So: unless some line starts with something else than a space, the first non-empty line
    gets its first space escaped (which makes it count, at exactly the padding); so does a last line of
    spaces only."""
    def has_content(line):
        return any(item != " " for item in line)

    chosen = set()
    if not any(line and line[0] != " " for line in lines):
        non_empty = [index for index, line in enumerate(lines) if line]
        if non_empty:
            chosen.add(non_empty[0])
    if lines[-1] and not has_content(lines[-1]):
        chosen.add(len(lines) - 1)
    return chosen


def indented_body(lines, pad):
    """Escaped lines for the inside of ``''...''``: ``''$`` for a ``$`` that would start an interpolation,
    ``''\\t`` and ``''\\r``, ``''\\'`` for a quote that the next token would swallow, ``''\\ `` as chosen."""
    escape_space = spaces_to_escape(lines)
    rendered = []
    following = ""  # the emitted text after the current item, for the quote rule
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        emitted = []
        for position in range(len(line) - 1, -1, -1):
            item = line[position]
            if isinstance(item, NixExpr):
                text = "${%s}" % item.text
            elif item == "$" and following[:1] in ("{", "$"):
                text = "''$"
            elif item == "'":
                text = "'" if following[:1] not in ("", "'") else "''\\'"
            elif item == "\t":
                text = "''\\t"
            elif item == "\r":
                text = "''\\r"
            elif item == " " and position == 0 and index in escape_space:
                text = "''\\ "
            else:
                text = item
            emitted.append(text)
            following = text + following
        body = "".join(reversed(emitted))
        rendered.append((pad + body) if body else "")
        following = "\n" + following
    rendered.reverse()
    return rendered


def render_indented(value, indent):
    """``''`` on the value's line, the text padded to ``indent + 2``, the closing ``''`` under the value."""
    lines = split_lines(indented_items(value))
    rendered = indented_body(lines, " " * (indent + 2))
    if rendered[-1] == "":
        rendered[-1] = " " * indent + "''"
    else:
        rendered[-1] += "''"
    return "''\n" + "\n".join(rendered)


def is_scalar(value):
    return value is None or isinstance(value, (bool, int, str, NixExpr))


def to_nix(value, indent=0):
    """Python data as a Nix value; ``indent`` is the column of the line the value starts on."""
    if isinstance(value, NixExpr):
        return value.text
    if isinstance(value, NixApply):
        return "%s %s" % (value.function.text, to_nix(value.argument, indent))
    if isinstance(value, NixIndented):
        return render_indented(value, indent)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return nix_string(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[ ]"
        inline = [to_nix(item) for item in value]
        if all(is_scalar(item) for item in value) or (
            not any("\n" in item for item in inline) and len(" ".join(inline)) <= 60
        ):
            return "[ %s ]" % " ".join(inline)
        pad = " " * (indent + 2)
        items = "".join("%s%s\n" % (pad, to_nix(item, indent + 2)) for item in value)
        return "[\n%s%s]" % (items, " " * indent)
    if isinstance(value, dict):
        if not value:
            return "{ }"
        if all(is_scalar(item) for item in value.values()) and len(value) <= 2:
            inline = "{ %s }" % " ".join("%s = %s;" % (nix_attr(k), to_nix(v)) for k, v in value.items())
            if len(inline) <= 60:
                return inline
        pad = " " * (indent + 2)
        items = "".join("%s%s = %s;\n" % (pad, nix_attr(k), to_nix(v, indent + 2)) for k, v in value.items())
        return "{\n%s%s}" % (items, " " * indent)
    raise NixosConfigError("cannot write %r (%s) as a Nix value" % (value, type(value).__name__))


def nix_comment(text):
    """``# text`` on one line whatever ``text`` holds (a newline in a comment would start code)."""
    return "# " + re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()


def mk_force(value):
    return NixApply(NixExpr("lib.mkForce"), value)


def mk_default(value):
    return NixApply(NixExpr("lib.mkDefault"), value)


class ModuleWriter:
    """Lines of a NixOS module body: comments and ``path = value;`` assignments, two spaces in."""

    def __init__(self):
        self.lines = []

    def blank(self):
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def comment(self, text):
        self.lines.append("  " + nix_comment(text))

    def set(self, path, value):
        self.lines.append("  %s = %s;" % (nix_attr_path(path), to_nix(value, 2)))

    def text(self):
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines)


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


# disko

def disko_safe(kind, name):
    if not DISKO_SAFE_NAME.match(str(name or "")):
        raise NixosConfigError(
            "the %s %r cannot go into a disko layout: disko writes it into shell commands unquoted "
            "(letters, digits, '_', '.', '+' and '-' only)" % (kind, name)
        )
    return name


def size_in_mib(size):
    return "%dM" % (size // MiB)


def disko_filesystem(filesystem, label, mountpoint, inode_ratio=None):
    disko_safe("filesystem label", label)
    if filesystem == "swap":
        return {"type": "swap", "extraArgs": ["-L", label]}
    content = {"type": "filesystem", "format": filesystem}
    if filesystem == "vfat":
        content["extraArgs"] = ["-n", label]
        content["mountOptions"] = list(ESP_MOUNT_OPTIONS)
    else:
        content["extraArgs"] = ["-L", label] + (["-i", str(inode_ratio)] if inode_ratio else [])
    if mountpoint:
        content["mountpoint"] = mountpoint
    return content


def disko_partition_content(plan, partition):
    if partition["filesystem"]:
        return disko_filesystem(partition["filesystem"], partition["label"], partition["mountpoint"])
    array = next((a for a in plan["arrays"] if partition["device"] in a["devices"]), None)
    if array is not None:
        return {"type": "mdraid", "name": disko_safe("array name", array["name"])}
    volume_group = next((vg for vg in plan["volume_groups"] if partition["device"] in vg["pvs"]), None)
    if volume_group is None:
        raise NixosConfigError("partition %s holds nothing in the plan" % partition["device"])
    return {"type": "lvm_pv", "vg": disko_safe("volume group", volume_group["name"])}


def disko_devices(plan):
    """``disko.devices`` as Python data (see ``render_disko``)."""
    disks = {}
    for disk in plan["disks"]:
        partitions = {}
        for partition in [p for p in plan["partitions"] if p["disk"] == disk["name"]]:
            partlabel = disko_safe("partition name", partition["partlabel"])
            partitions[partlabel] = {
                "priority": partition["number"],
                "label": partlabel,
                "type": partition["type_code"],
                "size": "100%" if partition["size"] is None else size_in_mib(partition["size"]),
                "content": disko_partition_content(plan, partition),
            }
        disks[disko_safe("disk name", disk["name"])] = {
            "type": "disk",
            "device": disk["path"],
            "content": {"type": "gpt", "partitions": partitions},
        }
    arrays = {}
    for array in plan["arrays"]:
        volume_group = next(vg for vg in plan["volume_groups"] if array["device"] in vg["pvs"])
        arrays[disko_safe("array name", array["name"])] = {
            "type": "mdadm",
            "level": DISKO_RAID_LEVELS[array["level"]],
            "metadata": array["metadata"],
            "content": {"type": "lvm_pv", "vg": disko_safe("volume group", volume_group["name"])},
        }
    volume_groups = {}
    for volume_group in plan["volume_groups"]:
        volumes = {}
        for lv in [lv for lv in plan["logical_volumes"] if lv["vg"] == volume_group["name"]]:
            volumes[disko_safe("logical volume", lv["name"])] = {
                "size": size_in_mib(lv["size"]),
                "content": disko_filesystem(lv["filesystem"], lv["label"], lv["mountpoint"], lv["inode_ratio"]),
            }
        volume_groups[disko_safe("volume group", volume_group["name"])] = {"type": "lvm_vg", "lvs": volumes}
    devices = {"disk": disks}
    if arrays:
        devices["mdadm"] = arrays
    devices["lvm_vg"] = volume_groups
    return devices


def render_disko(plan):
    """The plan as a disko ``disko.devices`` expression (a NixOS module that is a plain attribute set)."""
    header = [
        nix_comment("This machine's storage plan (version %s) as a disko layout, written by prenixos.baseline."
                    % plan.get("version")),
        nix_comment("Same disks, partition names, arrays, volume groups, sizes and labels as the plan. Not imported"),
        nix_comment("by configuration.nix (pre-nixos.nix already mounts everything by label); use it with disko."),
    ]
    return "\n".join(header) + "\n" + to_nix({"disko": {"devices": disko_devices(plan)}}) + "\n"
