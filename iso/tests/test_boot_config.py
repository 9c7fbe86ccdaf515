# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iso/boot_config.py: the consoles the build options CONSOLE and AUTOLOGIN give the image."""
from __future__ import annotations

import os
import re

import boot_config
import pytest
from conftest import ROOT

TEMPLATE = os.path.join(ROOT, "iso", "grub", "grub.cfg")


def grub(console="ttyS0,115200", kernel_args=""):
    with open(TEMPLATE) as handle:
        return boot_config.render_grub(handle.read(), boot_config.parse_consoles(console), "1.2.3", 94, kernel_args)


def test_by_default_the_kernel_talks_on_the_screen_and_ttys0_and_grub_also_on_ttys1_with_an_entry_for_it():
    text = grub(kernel_args="quiet")
    assert '\nset cmdline="console=tty0 console=ttyS0,115200n8 quiet"\n' in text
    assert re.findall(r"serial --unit=(\d) --speed=(\d+)", text) == [("0", "115200"), ("1", "115200")]
    assert "terminal_output --append serial_com1" in text and "terminal_input --append serial_com0" in text
    entry = text[text.index('menuentry "pre-nixos baseline 1.2.3: console on ttyS1 (115200)"'):]
    assert "linux /boot/vmlinuz console=tty0 console=ttyS1,115200n8 quiet $medium" in entry
    assert "console on ttyS0" not in text and not re.search(r"@[A-Z_]+@", text)


def test_console_ttys1_at_57600_moves_the_kernel_there_and_offers_ttys0_at_the_menu():
    text = grub("ttyS1,57600")
    assert '\nset cmdline="console=tty0 console=ttyS1,57600n8"\n' in text
    assert re.findall(r"serial --unit=(\d) --speed=(\d+)", text) == [("1", "57600"), ("0", "115200")]
    assert 'console on ttyS0 (115200)' in text and "console on ttyS1" not in text


def test_two_ports_the_last_is_dev_console():
    assert boot_config.kernel_console_args(boot_config.parse_consoles("ttyS1,57600 ttyS0")) == (
        "console=tty0 console=ttyS1,57600n8 console=ttyS0,115200n8")


@pytest.mark.parametrize("console, message", [
    ("ttyS4", "'ttyS4' is not a serial port"),
    ("ttyUSB0", "'ttyUSB0' is not a serial port"),
    ("ttyS1,56000", "'ttyS1,56000': the speed must be one of 9600, 19200, 38400, 57600, 115200"),
    ("ttyS0 ttyS0,9600", "ttyS0 is named twice"),
])
def test_a_console_that_is_not_a_serial_port_is_refused_with_the_reason(console, message):
    with pytest.raises(boot_config.ConsoleError, match=re.escape(message)):
        boot_config.parse_consoles(console)


def test_autologin_is_1_or_0_only():
    assert boot_config.parse_autologin("1") and not boot_config.parse_autologin("0")
    with pytest.raises(boot_config.ConsoleError, match="AUTOLOGIN: 'yes'"):
        boot_config.parse_autologin("yes")


def test_each_port_gets_a_getty_and_autologin_is_a_drop_in_for_every_serial_getty_and_the_screen(tmp_path):
    boot_config.write_files(str(tmp_path), boot_config.getty_files(boot_config.parse_consoles("ttyS1,57600"), True))
    system = tmp_path / "etc" / "systemd" / "system"
    assert os.readlink(system / "getty.target.wants" / "serial-getty@ttyS1.service") == (
        "/lib/systemd/system/serial-getty@.service")
    assert "--autologin root" in (system / "serial-getty@.service.d" / "autologin.conf").read_text()
    assert "--autologin root" in (system / "getty@tty1.service.d" / "autologin.conf").read_text()


def test_without_autologin_there_is_no_drop_in_at_all(tmp_path):
    boot_config.write_files(str(tmp_path), boot_config.getty_files(boot_config.parse_consoles("ttyS0"), False))
    found = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if not path.is_dir())
    assert found == ["etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"]


def test_a_bad_option_stops_the_build_with_the_reason(capsys, tmp_path):
    assert boot_config.main(["gettys", "--root", str(tmp_path), "--console", "ttyS9"]) == 2
    assert "iso/boot_config.py: CONSOLE: 'ttyS9' is not a serial port" in capsys.readouterr().err


@pytest.mark.parametrize("console", ["ttyS0,115200", "ttyS1,57600"])
def test_every_entry_is_echo_linux_initrd_so_a_switch_typed_on_its_third_line_reaches_the_kernel(console):
    # tests/vm/qemu.py types switches at the menu on the linux line: GRUB's editor shows setparams and a blank
    # line above an entry's own lines.
    bodies = re.findall(r"^menuentry [^\n]*\{\n(.*?)^\}", grub(console), re.MULTILINE | re.DOTALL)
    assert len(bodies) == 4
    for body in bodies:
        assert [line.split()[0] for line in body.strip().splitlines()] == ["echo", "linux", "initrd"], body


@pytest.mark.parametrize("argv, message", [
    (["check", "--console", "ttyS9"], "CONSOLE: 'ttyS9' is not a serial port"),
    (["check", "--autologin", "yes"], "AUTOLOGIN: 'yes'"),
])
def test_the_options_are_checked_before_anything_is_built(capsys, argv, message):
    assert boot_config.main(argv) == 2
    assert message in capsys.readouterr().err
    assert boot_config.main(["check", "--console", "ttyS1,57600", "--autologin", "0"]) == 0
