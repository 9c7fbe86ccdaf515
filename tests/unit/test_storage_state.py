"""Reading the storage state: the pure parsers on real tool output, and read_state on a fake machine."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runners import RecordingRunner, local_runner
from test_storage_apply_fake_machine import FakeMachine, GiB

from ansible_collections.prenixos.baseline.plugins.module_utils import storage_state
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import (
    StateError,
    md_short_name,
    parse_blkid,
    parse_export,
    parse_lvs,
    parse_mdadm_detail,
    parse_mdadm_examine,
    parse_mdstat,
    parse_partx,
    parse_pvs,
    parse_swaps,
    parse_vgs,
    read_state,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state_model import partition_number

FIXTURES = Path(__file__).parent / "fixtures" / "state"


def fixture(name):
    return (FIXTURES / name).read_text()


# ---------------------------------------------------------------- blkid


def test_blkid_on_an_esp_gives_its_filesystem_without_the_partition_entry_details():
    assert parse_blkid(fixture("blkid_esp.txt"), 0, "/dev/sda1") == {
        "UUID": "4A3B-1C2D", "BLOCK_SIZE": "512", "VERSION": "FAT32", "SEC_TYPE": "msdos", "LABEL": "EFI",
        "LABEL_FATBOOT": "EFI", "TYPE": "vfat", "USAGE": "filesystem",
    }


def test_blkid_on_an_empty_partition_is_blank_although_it_prints_the_table_entry():
    assert parse_blkid(fixture("blkid_empty_partition.txt"), 0, "/dev/sdc1") == {}


def test_blkid_on_a_disk_gives_its_partition_table():
    assert parse_blkid(fixture("blkid_disk_gpt.txt"), 0, "/dev/sda") == {
        "PTUUID": "8e2f4c1a-6b3d-4e5f-a7b8-c9d0e1f2a3b4", "PTTYPE": "gpt"}


def test_the_probes_of_several_devices_run_in_one_shell_each_with_its_exit_code():
    out = fixture("blkid_esp.txt") + "PRENIXOS_RC=0\nPRENIXOS_RC=2\nPRENIXOS_RC=8\n"
    runner = RecordingRunner({("sh", "-c"): (0, out, "")})
    probes = storage_state.probe_devices(runner, {}, ["/dev/sda1", "/dev/sdc", "/dev/sdd"])
    assert probes == [parse_blkid(fixture("blkid_esp.txt"), 0, "/dev/sda1"), {}, {"AMBIVALENT": "1"}]
    assert runner.calls == [["sh", "-c", storage_state.each_script(storage_state.PROBE_OPTIONS), "blkid", "blkid",
                             "/dev/sda1", "/dev/sdc", "/dev/sdd"]]


@pytest.mark.parametrize("out", ["PRENIXOS_RC=0\n", "PRENIXOS_RC=0\nPRENIXOS_RC=2\nTYPE=ext4\n",
                                 "PRENIXOS_RC=x\nPRENIXOS_RC=0\n"])
def test_probes_that_printed_too_little_or_too_much_are_a_clear_error(out):
    runner = RecordingRunner({("sh", "-c"): (0, out, "")})
    with pytest.raises(StateError, match="blkid -p"):
        storage_state.probe_devices(runner, {}, ["/dev/sdc", "/dev/sdd"])


def test_the_probe_script_gives_each_device_its_own_exit_code(tmp_path):
    """The script itself, on files (blkid probes a file as it would a device): one blank, one ext4."""
    blank, ext4 = tmp_path / "blank.img", tmp_path / "ext4.img"
    blank.write_bytes(b"\0" * 65536)
    ext4.write_bytes(b"\0" * 65536)
    fake_blkid = tmp_path / "blkid"
    fake_blkid.write_text('#!/bin/sh\ncase $4 in *ext4*) echo TYPE=ext4; exit 0;; esac; exit 2\n')
    fake_blkid.chmod(0o755)
    probes = storage_state.probe_devices(local_runner(), {"blkid": str(fake_blkid)},
                                         [str(blank), str(ext4), str(blank)])
    assert probes == [{}, {"TYPE": "ext4"}, {}]


def test_blkid_exit_codes_mean_blank_ambivalent_or_failure():
    assert parse_blkid("", 2, "/dev/sdc") == {}
    assert parse_blkid("", 8, "/dev/sdc") == {"AMBIVALENT": "1"}
    with pytest.raises(StateError, match="blkid -p /dev/sdc failed with exit code 4"):
        parse_blkid("", 4, "/dev/sdc")


def test_export_values_lose_their_backslash_escapes_and_garbage_is_refused():
    assert parse_export("LABEL=my\\ disk\nTYPE=ext4\n", "blkid") == {"LABEL": "my disk", "TYPE": "ext4"}
    with pytest.raises(StateError, match="not KEY=value"):
        parse_export("mdadm: No md superblock detected on /dev/sdc1.\n", "mdadm --examine")


# ---------------------------------------------------------------- mdadm and mdstat


def test_mdadm_detail_gives_name_level_and_members():
    assert parse_mdadm_detail(fixture("mdadm_detail_main.txt"), "/dev/md127") == {
        "level": "raid0", "raid_devices": 2, "metadata": "1.2", "uuid": "3b5f0c6e:5d1a2b3c:4d5e6f70:81928374",
        "name": "any:main", "short_name": "main", "devname": "main", "members": ["/dev/sda2", "/dev/sdb2"],
    }


def test_mdadm_examine_gives_the_array_a_member_belongs_to():
    assert parse_mdadm_examine(fixture("mdadm_examine_member.txt"), "/dev/sdc1") == {
        "level": "raid1", "raid_devices": 2, "name": "old box:data", "short_name": "data",
        "uuid": "0f1e2d3c:4b5a6978:8796a5b4:c3d2e1f0", "events": 1234,
    }


def test_mdadm_output_without_the_expected_keys_is_a_clear_error():
    with pytest.raises(StateError, match="printed neither MD_LEVEL nor MD_DEVICES"):
        parse_mdadm_detail("MD_UUID=1:2:3:4\n", "/dev/md127")
    with pytest.raises(StateError, match="printed no MD_UUID"):
        parse_mdadm_examine("MD_LEVEL=raid1\n", "/dev/sdc1")
    with pytest.raises(StateError, match="MD_DEVICES='two' is not a number"):
        parse_mdadm_examine("MD_UUID=1\nMD_DEVICES=two\n", "/dev/sdc1")


def test_md_names_lose_their_home_host():
    assert [md_short_name(n) for n in ("any:main", "rack12:main", "main", None)] == ["main", "main", "main", None]


def test_mdstat_lists_active_read_only_and_inactive_arrays_with_their_members():
    assert parse_mdstat(fixture("mdstat_mixed.txt")) == {
        "md125": {"active": True, "read_only": False, "level": "raid5", "members": [
            {"name": "sdg1", "slot": 3, "flags": []}, {"name": "sdf1", "slot": 1, "flags": []},
            {"name": "sde1", "slot": 0, "flags": []}]},
        "md126": {"active": True, "read_only": True, "level": "raid1", "members": [
            {"name": "sdd1", "slot": 1, "flags": []}, {"name": "sdc1", "slot": 0, "flags": []}]},
        "md127": {"active": False, "read_only": False, "level": None, "members": [
            {"name": "sdb2", "slot": 1, "flags": ["S"]}]},
    }


def test_mdstat_without_md_module_is_empty_and_a_garbled_array_line_is_an_error():
    assert parse_mdstat("") == {}
    assert parse_mdstat("Personalities : \nunused devices: <none>\n") == {}
    with pytest.raises(StateError, match="array line"):
        parse_mdstat("md127 - active raid1 sda1[0]\n")
    with pytest.raises(StateError, match="member this module cannot read"):
        parse_mdstat("md127 : active raid1 sda1{0}\n")


# ---------------------------------------------------------------- LVM


def test_pvs_report_lists_pvs_with_orphans_having_no_vg():
    assert parse_pvs(fixture("pvs.json")) == [
        {"pv_name": "/dev/md127", "vg_name": "main", "size": 66567798784,
         "uuid": "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000000"},
        {"pv_name": "/dev/nvme0n1p1", "vg_name": "", "size": 68717379584,
         "uuid": "bbbbbb-bbbb-cccc-dddd-eeee-ffff-000000"},
        {"pv_name": "/dev/sdc1", "vg_name": "old", "size": 17177772032,
         "uuid": "cccccc-bbbb-cccc-dddd-eeee-ffff-000000"},
    ]


def test_vgs_report_gives_sizes_in_bytes_and_flags_partial_groups():
    assert parse_vgs(fixture("vgs.json")) == {
        "main": {"size": 66563604480, "free": 9730785280, "extent_size": 4194304, "attr": "wz--n-",
                 "partial": False, "pv_count": 1, "lv_count": 2,
                 "tags": ["prenixos_build_0123456789abcdef", "prenixos_finished"]},
        "old": {"size": 34355544064, "free": 0, "extent_size": 4194304, "attr": "wz-pn-",
                "partial": True, "pv_count": 2, "lv_count": 1, "tags": []},
    }


def test_lvs_report_tells_active_from_inactive_volumes():
    volumes = parse_lvs(fixture("lvs.json"))
    assert sorted(volumes) == ["main/home", "main/slash", "old/data"]
    assert volumes["main/slash"] == {"vg": "main", "name": "slash", "size": 53687091200, "path": "/dev/main/slash",
                                     "dm_path": "/dev/mapper/main-slash", "active": True}
    assert volumes["old/data"]["active"] is False


def test_lvm_reports_accept_json_std_numbers_too():
    text = '{"report": [{"vg": [{"vg_name": "main", "vg_size": 8388608, "vg_free": 4194304}]}]}'
    assert parse_vgs(text)["main"]["free"] == 4194304


@pytest.mark.parametrize("text, message", [
    ("  WARNING: lvmetad is not running\n", "did not print valid JSON"),
    ('{"reports": []}', "without a 'report' list"),
    ('{"report": [{"vg": {"vg_name": "x"}}]}', "without a 'vg' list"),
    ('{"report": [{"vg": [{"vg_size": "1", "vg_free": "1"}]}]}', "without vg_name"),
    ('{"report": [{"vg": [{"vg_name": "x", "vg_size": "12 GiB", "vg_free": "0"}]}]}', "not a number of bytes"),
])
def test_malformed_lvm_output_is_a_clear_error(text, message):
    with pytest.raises(StateError, match=message):
        parse_vgs(text)


# ---------------------------------------------------------------- partx, swaps


def test_partx_pairs_give_the_table_on_the_disk_with_escapes_undone_and_guids_in_lower_case():
    assert parse_partx(fixture("partx_gpt.txt"), "/dev/sda") == [
        {"number": 1, "start": 2048, "size": 1073741824, "name": "main-esp1",
         "type": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "scheme": "gpt"},
        {"number": 2, "start": 2099200, "size": 33284390912, "name": "main raid 1",
         "type": "a19d880f-05fc-4d3b-a006-743f0f84911e", "scheme": "gpt"},
    ]


def test_partx_output_without_partition_numbers_is_an_error():
    with pytest.raises(StateError, match="without a partition number"):
        parse_partx("NR   START      END\n", "/dev/sda")


def test_swaps_lists_devices_and_files_with_escapes_undone():
    assert parse_swaps(fixture("swaps.txt")) == ["/dev/dm-2", "/var/swap file"]
    with pytest.raises(StateError, match="header"):
        parse_swaps("/dev/dm-2 partition 1 0 -2\n")


PARSERS = [
    lambda text: parse_blkid(text, 0, "/dev/x"),
    lambda text: parse_mdadm_detail(text, "/dev/md0"),
    lambda text: parse_mdadm_examine(text, "/dev/x"),
    parse_mdstat,
    parse_swaps,
    parse_pvs,
    parse_vgs,
    parse_lvs,
    lambda text: parse_partx(text, "/dev/x"),
]


@settings(max_examples=300, deadline=None)
@given(parser=st.sampled_from(PARSERS), text=st.one_of(
    st.text(max_size=300),
    st.sampled_from([fixture(name) for name in sorted(p.name for p in FIXTURES.glob("*.txt"))]).flatmap(
        lambda real: st.integers(0, len(real)).map(lambda cut: real[:cut])),
    st.sampled_from([fixture(n) for n in ("pvs.json", "vgs.json", "lvs.json")]).flatmap(
        lambda real: st.integers(0, len(real)).map(lambda cut: real[:cut])),
))
def test_any_tool_output_gives_a_result_or_a_state_error_never_a_traceback(parser, text):
    try:
        parser(text)
    except StateError:
        pass


# ---------------------------------------------------------------- read_state on a fake machine


def test_read_state_finds_the_live_usb_stick_as_the_boot_disk_through_its_loop_device(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.boot_from_live_usb("sdz")
    machine.add_disk("sda", 32 * GiB)
    state = read_state(machine, ["sda"], **machine.roots)
    assert state.boot_disks == {"sdz"}


def test_read_state_finds_both_disks_under_a_root_on_lvm_on_raid(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.boot_from_root_on_raid(("sdx", "sdy"))
    machine.add_disk("sda", 32 * GiB)
    state = read_state(machine, ["sda"], **machine.roots)
    assert state.boot_disks == {"sdx", "sdy"}


def test_read_state_probes_only_the_planned_disks_and_reads_their_tables_from_the_disk(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.boot_from_root_partition("vda")
    machine.add_disk("nvme0n1", 64 * GiB, transport="nvme")
    machine.add_partition("nvme0n1", 1, GiB, name="main-esp1", type_code="EF00")
    machine.disks["nvme0n1"]["kernel"] = set()  # sgdisk wrote it, the kernel has not re-read it yet
    machine.sync()
    state = read_state(machine, ["nvme0n1"], **machine.roots)
    assert state.tables["nvme0n1"] == [{"number": 1, "start": 2048, "size": GiB, "name": "main-esp1",
                                        "type": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "scheme": "gpt"}]
    assert state.kernel_partitions("nvme0n1") == {}
    assert state.probes == {"nvme0n1": {"PTTYPE": "gpt", "PTUUID": state.probes["nvme0n1"]["PTUUID"]}}
    probed = [argv[-1] for argv in machine.calls if argv[0] in ("blkid", "partx")]
    assert probed == ["/dev/nvme0n1", "/dev/nvme0n1"]


def test_read_state_resolves_lv_and_md_paths_through_dev_symlinks(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.add_disk("sdc", 16 * GiB, rotational=True)
    machine.add_disk("sdd", 16 * GiB, rotational=True)
    members = [machine.add_partition(d, 1, None, type_code="FD00") for d in ("sdc", "sdd")]
    md = machine.add_array("any:swap", "raid1", members)
    machine.add_vg("swap", [md], [("swap", GiB)])
    state = read_state(machine, ["sdc", "sdd"], **machine.roots)
    dm = machine.lvs[("swap", "swap")]["dm"]
    assert (state.kname_of("/dev/md/swap"), state.kname_of("/dev/swap/swap")) == (md, dm)
    assert state.md_name(md) == "swap" and state.md_members(md) == ["sdc1", "sdd1"]
    assert state.tops[dm] == {"sdc", "sdd"}
    assert state.superblocks["sdc1"]["short_name"] == "swap"
    assert state.pv_on(md)["vg_name"] == "swap"


def test_a_state_with_wiped_disks_forgets_everything_stacked_on_them(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.add_disk("sdc", 16 * GiB, rotational=True)
    machine.add_disk("sdd", 16 * GiB, rotational=True)
    members = [machine.add_partition(d, 1, None, type_code="FD00") for d in ("sdc", "sdd")]
    md = machine.add_array("old", "raid1", members)
    machine.add_vg("old", [md], [("data", GiB)])
    state = read_state(machine, ["sdc", "sdd"], **machine.roots).without_disks(["sdc", "sdd"])
    assert (state.descendants("sdc"), state.tables, state.mdstat, state.pvs, state.vgs, state.lvs) == (
        [], {}, {}, [], {}, {})
    assert state.probe("sdc") == {} and state.present("sdc")


def test_unreadable_lsblk_output_is_a_state_error(tmp_path):
    machine = FakeMachine(tmp_path)
    runner = RecordingRunner({("lsblk",): (0, "lsblk: unknown column", "")})
    with pytest.raises(StateError, match="lsblk -J -b -O did not print valid JSON"):
        read_state(runner, [], **machine.roots)


def test_partition_numbers_follow_kernel_naming():
    assert partition_number("sda", "sda12") == 12
    assert partition_number("nvme0n1", "nvme0n1p3") == 3
    assert partition_number("sda", "md127") is None
