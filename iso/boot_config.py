# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image's consoles, from the build options ``CONSOLE`` and ``AUTOLOGIN`` (iso/build.sh).

    boot_config.py grub --template iso/grub/grub.cfg --out TREE/boot/grub/grub.cfg \\
        --console "ttyS0,115200" --version 0.1.0 --size-mib 94 --kernel-args ""
    boot_config.py gettys --root LAYER_ROOT --console "ttyS0,115200" --autologin 1
    boot_config.py check --console "ttyS0,115200" --autologin 1     # the options only

``CONSOLE`` names the serial ports, each ``ttySN`` or ``ttySN,SPEED`` (115200 when left out), separated by
spaces; the screen is always a console too. The kernel gets ``console=tty0`` and one ``console=`` per port,
in that order: the last one is ``/dev/console``, where first boot's progress lines go. GRUB talks on the
screen and on every port of ``CONSOLE`` plus ``ttyS0`` and ``ttyS1`` (a BMC's serial-over-LAN is often the
second port), and offers an entry per port that ``CONSOLE`` leaves out, which puts the kernel's console
there. Each port of ``CONSOLE`` gets a getty; a port chosen at the menu gets one from systemd (the kernel's
console). ``AUTOLOGIN=1`` (the default) logs root in on the screen and on every serial getty, as the NixOS
installer image does: console access is physical access. ``AUTOLOGIN=0`` gives a login prompt; root has no
password, so only SSH with the key gets in.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

SPEEDS = (9600, 19200, 38400, 57600, 115200)
DEFAULT_SPEED = 115200
# Ports GRUB talks on and the menu offers, whatever CONSOLE says.
MENU_PORTS = ("ttyS0", "ttyS1")
PORT = re.compile(r"^ttyS([0-3])(?:,(\d+))?$")


class ConsoleError(ValueError):
    pass


def parse_consoles(text):
    """``"ttyS0,115200 ttyS1,57600"`` -> ``[("ttyS0", 115200), ("ttyS1", 57600)]``; a clear error otherwise."""
    consoles = []
    for word in text.split():
        match = PORT.match(word)
        if not match:
            raise ConsoleError("CONSOLE: %r is not a serial port: expected ttyS0 to ttyS3, with an optional speed"
                               " (ttyS1,57600)" % word)
        speed = int(match.group(2) or DEFAULT_SPEED)
        if speed not in SPEEDS:
            raise ConsoleError("CONSOLE: %r: the speed must be one of %s" % (word, ", ".join(map(str, SPEEDS))))
        if any(port == "ttyS" + match.group(1) for port, _speed in consoles):
            raise ConsoleError("CONSOLE: ttyS%s is named twice" % match.group(1))
        consoles.append(("ttyS" + match.group(1), speed))
    return consoles


def parse_autologin(text):
    if text not in ("0", "1"):
        raise ConsoleError("AUTOLOGIN: %r: expected 1 (root logged in on the consoles) or 0 (a login prompt)" % text)
    return text == "1"


def kernel_console_args(consoles):
    """The kernel's consoles: the screen, then each port (the last one is /dev/console)."""
    return " ".join(["console=tty0"] + ["console=%s,%dn8" % (port, speed) for port, speed in consoles])


def grub_ports(consoles):
    """Every port GRUB talks on, with its speed: CONSOLE's, then ttyS0 and ttyS1 at 115200 if not among them."""
    ports = list(consoles)
    ports += [(port, DEFAULT_SPEED) for port in MENU_PORTS if port not in dict(consoles)]
    return ports


def grub_terminals(consoles):
    """GRUB's lines that put its menu on each port that is there (a missing port is skipped)."""
    lines = []
    for port, speed in grub_ports(consoles):
        unit = port[len("ttyS"):]
        lines += ["if serial --unit=%s --speed=%d; then" % (unit, speed),
                  "    terminal_input --append serial_com%s" % unit,
                  "    terminal_output --append serial_com%s" % unit,
                  "fi"]
    return "\n".join(lines)


def console_entries(consoles):
    """An extra menu entry for each of ttyS0/ttyS1 that CONSOLE leaves out: the kernel's console goes there."""
    entries = []
    for port in MENU_PORTS:
        if port in dict(consoles):
            continue
        entries.append("\n".join([
            'menuentry "pre-nixos baseline @VERSION@: console on %s (%d)" {' % (port, DEFAULT_SPEED),
            '    echo "Loading the kernel and the system (@SIZE_MIB@ MiB) into memory..."',
            "    linux /boot/vmlinuz %s @KERNEL_ARGS@ $medium" % kernel_console_args([(port, DEFAULT_SPEED)]),
            "    initrd /boot/os.cpio.zst /boot/layer.cpio.zst",
            "}"]))
    return "\n".join(entries)


def render_grub(template, consoles, version, size_mib, kernel_args):
    cmdline = " ".join(filter(None, [kernel_console_args(consoles), kernel_args]))
    fields = {"@SERIAL_TERMINALS@": grub_terminals(consoles), "@CMDLINE@": cmdline,
              "@CONSOLE_ENTRIES@": console_entries(consoles), "@KERNEL_ARGS@": kernel_args,
              "@VERSION@": version, "@SIZE_MIB@": str(size_mib)}
    for field, value in fields.items():
        template = template.replace(field, value)
    return template


AUTOLOGIN_SERIAL = """# Managed by pre-nixos baseline (boot image, AUTOLOGIN=1): console access is physical access.
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - $TERM
"""
AUTOLOGIN_SCREEN = """# Managed by pre-nixos baseline (boot image, AUTOLOGIN=1): console access is physical access.
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear - $TERM
"""


def getty_files(consoles, autologin):
    """Files of the small layer (path under its root -> content, or ``("link", target)``)."""
    files = {}
    system = "etc/systemd/system"
    for port, _speed in consoles:
        files["%s/getty.target.wants/serial-getty@%s.service" % (system, port)] = (
            "link", "/lib/systemd/system/serial-getty@.service")
    if autologin:
        files["%s/serial-getty@.service.d/autologin.conf" % system] = AUTOLOGIN_SERIAL
        files["%s/getty@tty1.service.d/autologin.conf" % system] = AUTOLOGIN_SCREEN
    return files


def write_files(root, files):
    for path, content in files.items():
        target = os.path.join(root, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(content, tuple):
            os.symlink(content[1], target)
        else:
            with open(target, "w") as handle:
                handle.write(content)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    grub = sub.add_parser("grub")
    grub.add_argument("--template", required=True)
    grub.add_argument("--out", required=True)
    grub.add_argument("--version", required=True)
    grub.add_argument("--size-mib", required=True, type=int)
    grub.add_argument("--kernel-args", default="")
    gettys = sub.add_parser("gettys")
    gettys.add_argument("--root", required=True)
    check = sub.add_parser("check", help="check CONSOLE and AUTOLOGIN, build nothing")
    for command in (gettys, check):
        command.add_argument("--autologin", default="1")
    for command in (grub, gettys, check):
        command.add_argument("--console", default="ttyS0,%d" % DEFAULT_SPEED)
    args = parser.parse_args(argv)
    try:
        consoles = parse_consoles(args.console)
        if args.command == "check":
            parse_autologin(args.autologin)
        elif args.command == "grub":
            with open(args.template) as handle:
                text = render_grub(handle.read(), consoles, args.version, args.size_mib, args.kernel_args)
            with open(args.out, "w") as handle:
                handle.write(text)
        else:
            write_files(args.root, getty_files(consoles, parse_autologin(args.autologin)))
    except ConsoleError as error:
        print("iso/boot_config.py: %s" % error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
