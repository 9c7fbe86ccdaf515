# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of a built image's files (``make iso-options``): ``--iso PATH`` names the image."""
from __future__ import annotations

import os
import subprocess

import pytest


def pytest_addoption(parser):
    parser.addoption("--iso", required=True, help="the image to check")


@pytest.fixture(scope="session")
def image(request, tmp_path_factory):
    """The image's files: ``grub.cfg`` (text), ``layer`` and ``os`` (path -> member of each cpio, as listed)."""
    iso = request.config.getoption("--iso")
    out = tmp_path_factory.mktemp("image")
    for name in ("grub/grub.cfg", "layer.cpio.zst", "os.cpio.zst"):
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/" + name,
                        str(out / os.path.basename(name))], check=True, capture_output=True)
    return {"grub.cfg": (out / "grub.cfg").read_text(), "dir": out,
            "layer": cpio_listing(out / "layer.cpio.zst"), "os": cpio_listing(out / "os.cpio.zst")}


def cpio_listing(path):
    listing = subprocess.run("zstd -dc %s | cpio -t --quiet" % path, shell=True, check=True, capture_output=True,
                             text=True).stdout
    return listing.splitlines()


def cpio_file(path, member):
    """One member's content (``member`` as the cpio lists it)."""
    return subprocess.run("zstd -dc %s | cpio -i --quiet --to-stdout %s" % (path, member), shell=True, check=True,
                          capture_output=True, text=True).stdout
