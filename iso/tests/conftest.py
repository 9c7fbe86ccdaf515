# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image's first-boot scripts, each loaded from its file as a module of its own, and the collection importable."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "collections"))
sys.path.insert(0, os.path.join(ROOT, "iso"))


def load_script(name):
    """iso/firstboot/NAME.py as a module named NAME."""
    path = os.path.join(ROOT, "iso", "firstboot", name + ".py")
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def firstboot():
    return load_script("pre_nixos_firstboot")


@pytest.fixture(scope="module")
def cli():
    return load_script("pre_nixos_cli")
