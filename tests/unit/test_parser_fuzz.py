"""Fuzzing the parsers end to end: malformed tool output, sysfs values, mountinfo and ``ip -j link``
give a result or the module's own clear error, never a traceback (the kernel command line:
iso/tests/test_firstboot.py; mdadm, LVM, blkid, partx, mdstat: test_storage_state.py).

The inputs are the real fixtures with one value replaced (by any JSON value, or by any text), or cut
short, so that the parsers see what a broken or newer tool could print.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runners import RecordingRunner
from test_disk_facts import Machine

from ansible_collections.prenixos.baseline.plugins.module_utils import block_devices, nics

FIXTURES = Path(__file__).parent / "fixtures"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def places(value, path=()):
    """Every path into a JSON document (the document itself is ``()``)."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from places(child, path + (key,))


@st.composite
def mutated_json(draw, document):
    """``document`` with one value replaced by any JSON value or one key dropped, or its text cut short."""
    how = draw(st.sampled_from(["replace", "drop", "cut"]))
    text = json.dumps(document)
    if how == "cut":
        return text[:draw(st.integers(0, len(text) - 1))]
    path = draw(st.sampled_from(list(places(document))))
    if not path:
        return json.dumps(draw(JSON_VALUES))
    changed = copy.deepcopy(document)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    if how == "drop":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(changed)


LSBLK = json.loads((FIXTURES / "disks" / "usb_live_stick" / "lsblk.json").read_text())
SYSFS = json.loads((FIXTURES / "disks" / "usb_live_stick" / "sysfs.json").read_text())
SYSFS_PLACES = [(device, attribute) for device, attributes in SYSFS.items() for attribute in attributes]


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    return Machine(tmp_path_factory.mktemp("fuzz"), "usb_live_stick")


def gather(machine, lsblk_text=None):
    machine.runner = RecordingRunner({("lsblk",): (0, lsblk_text or json.dumps(LSBLK), "")})
    try:
        return machine.gather()
    except block_devices.DiskFactsError as err:
        assert str(err), "a DiskFactsError must say what is wrong"
        return None


def test_the_unchanged_fixture_is_understood(machine):
    assert [disk["name"] for disk in gather(machine)] == ["loop0", "sda", "sdb"]


@FUZZ
@given(text=mutated_json(LSBLK))
def test_any_lsblk_output_gives_disks_or_a_clear_error(machine, text):
    gather(machine, text)


@FUZZ
@given(place=st.sampled_from(SYSFS_PLACES), value=st.text(max_size=24) | st.sampled_from(["-1", "1e3", "0x10", "2 "]))
def test_any_sysfs_value_gives_disks_or_a_clear_error(machine, place, value):
    path = os.path.join(machine.sysfs_root, "block", place[0], place[1])
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(value)
    try:
        gather(machine)
    finally:
        with open(path, "w") as handle:
            handle.write(SYSFS[place[0]][place[1]] + "\n")


MOUNTINFO = (FIXTURES / "disks" / "usb_live_stick" / "mountinfo").read_text()


@FUZZ
@given(line=st.integers(0, len(MOUNTINFO.splitlines()) - 1), text=st.text(max_size=80))
def test_any_mountinfo_line_gives_mounts_or_a_clear_error(line, text):
    lines = MOUNTINFO.splitlines()
    lines[line] = text
    try:
        block_devices.parse_mountinfo("\n".join(lines))
    except block_devices.DiskFactsError as err:
        assert "mountinfo" in str(err)


IP_LINK = [{"ifname": "lo", "address": "00:00:00:00:00:00"},
           {"ifname": "ens3", "address": "52:54:00:12:34:56", "permaddr": "52:54:00:12:34:99"}]


@FUZZ
@given(text=mutated_json(IP_LINK))
def test_any_ip_link_output_gives_links_or_a_clear_error(text):
    try:
        links = nics.parse_ip_link(text)
    except nics.NicFactsError as err:
        assert "ip -j link" in str(err)
    else:
        assert isinstance(links, dict)
