# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image built with CONSOLE="ttyS1,57600" AUTOLOGIN=0 (make iso-options) has those settings, and only those."""
from __future__ import annotations

import re

from conftest import cpio_file


def test_the_kernel_and_grub_talk_on_ttys1_at_57600_and_the_menu_offers_ttys0(image):
    text = image["grub.cfg"]
    assert '\nset cmdline="console=tty0 console=ttyS1,57600n8"\n' in text
    assert re.findall(r"serial --unit=(\d) --speed=(\d+)", text) == [("1", "57600"), ("0", "115200")]
    assert "console on ttyS0 (115200)" in text and "console on ttyS1" not in text


def test_ttys1_has_a_getty_and_no_console_logs_root_in(image):
    assert "etc/systemd/system/getty.target.wants/serial-getty@ttyS1.service" in image["layer"]
    autologin = [member for member in image["layer"] + image["os"] if "autologin" in member]
    assert autologin == [], "expected no autologin drop-in in either layer: %s" % autologin


def test_root_has_no_password_so_only_the_key_gets_in(image):
    shadow = cpio_file(image["dir"] / "os.cpio.zst", "etc/shadow")
    root = next(line.split(":") for line in shadow.splitlines() if line.startswith("root:"))
    assert root[1] in ("*", "!", "!*"), "expected root's password locked or unset, found %r" % root[1]


def test_the_image_says_what_it_was_built_with(image):
    info = cpio_file(image["dir"] / "layer.cpio.zst", "etc/pre-nixos/build-info")
    assert "console: ttyS1,57600\n" in info and "autologin: 0\n" in info, info
