# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hermetic tests of iso/firstboot/pre_nixos_cli.py (pre-nixos): arguments, the variables each subcommand gives
ansible-playbook (a recording fake runs it), the status table, edit's accept and refuse flow."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage

GiB = 1024 ** 3
TB = 1000 ** 4


@pytest.fixture
def machine_dir(cli, tmp_path, monkeypatch):
    """LOG_DIR, the plan file and the status file in tmp_path."""
    monkeypatch.setattr(cli.firstboot, "LOG_DIR", str(tmp_path))
    monkeypatch.setattr(cli.firstboot, "STATUS_PATH", str(tmp_path / "status.json"))
    monkeypatch.setattr(cli, "PLAN_PATH", str(tmp_path / "plan.json"))
    return tmp_path


def disk(name, size, rotational, serial):
    return {"name": name, "size": size, "rotational": rotational, "serial": serial, "wwn": None,
            "path": "/dev/" + name, "transport": "sata"}


def sample_plan(**options):
    return plan_storage([disk("sda", TB, False, "SSD1"), disk("sdb", TB, False, "SSD2")], 8 * GiB, options)


class FakeAnsible:
    """Records each ansible-playbook run; each answer is (exit code, output, what the run does to the files)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []
        self.log_path = "/var/log/pre-nixos/test.log"

    def open(self):
        return self.log_path

    def run(self, playbook, variables, options=(), echo=True, result_format="yaml"):
        self.calls.append({"playbook": playbook, "variables": variables, "options": list(options), "echo": echo,
                           "result_format": result_format})
        rc, output, effect = self.answers.pop(0)
        if effect:
            effect(variables)
        return rc, output


class FakeMachine:
    def __init__(self, answers=(), edits=(), replies=(), switches=None, running=False, locked=False):
        self.ansible = FakeAnsible(answers)
        self.edits = list(edits)
        self.replies = list(replies)
        self.questions = []
        self.switches = switches or {}
        self.running = running
        self.locked = locked
        self.mounted = []
        self.followed = None

    def mount(self, uuid):
        self.mounted.append(uuid)
        return None

    def first_boot_running(self):
        return self.running

    def lock(self):
        return not self.locked

    def edit(self, path):
        return self.edits.pop(0)(path)

    def ask(self, question):
        self.questions.append(question)
        return self.replies.pop(0) if self.replies else None

    def follow(self, path):
        self.followed = path


def run(cli, argv, machine):
    return cli.run(argv, machine_for=lambda command: machine)


def write_plan(path, plan):
    with open(path, "w") as handle:
        json.dump(plan, handle, indent=2, sort_keys=True)


def refusal(*problems):
    """What ansible-playbook prints (results as JSON) when the storage role refuses a plan."""
    return ('TASK [prenixos.baseline.storage : Plan the layout] ***\n'
            'fatal: [localhost]: FAILED! => %s\n\nPLAY RECAP ***\n'
            % json.dumps({"changed": False, "msg": "the plan is refused:\n" + "\n".join(problems)}))


# ------------------------------------------------------------------ arguments

@pytest.mark.parametrize("argv, complaint", [
    ([], "the following arguments are required: COMMAND"),
    (["plant"], "invalid choice: 'plant'"),
    (["plan", "--slash", "20X"], "argument --slash: '20X' is not a size: bytes, or a number with a binary unit"),
    (["plan", "--home", "-1G"], "argument --home: expected one argument"),
    (["plan", "--min-disk-size", "lots"], "argument --min-disk-size: 'lots' is not a size"),
    (["plan", "--tolerance", "1.5"], "argument --tolerance: '1.5' is not a fraction from 0 to below 1 (0.01 is 1 %)"),
    (["plan", "--tolerance", "tight"], "argument --tolerance: 'tight' is not a fraction"),
    (["plan", "--exclude", " "], "argument --exclude: disk selector: a disk selector must be a non-empty string"),
    (["plan", "--include", "/dev/disk/sda"], "argument --include: disk selector: '/dev/disk/sda' is not a disk "
                                             "selector"),
    (["plan", "--wipe"], "unrecognized arguments: --wipe"),
    (["apply", "--plan", "/nonexistent/plan.json"], "argument --plan: no plan file at /nonexistent/plan.json"),
    (["edit", "--plan"], "argument --plan: expected one argument"),
    (["status", "extra"], "unrecognized arguments: extra"),
])
def test_bad_arguments_get_argparses_message_and_exit_2_before_anything_runs(cli, argv, complaint, capsys):
    machine = FakeMachine()
    with pytest.raises(SystemExit) as stop:
        run(cli, argv, machine)
    assert stop.value.code == 2
    assert complaint in capsys.readouterr().err
    assert machine.ansible.calls == []


@pytest.mark.parametrize("command", [[], ["status"], ["plan"], ["edit"], ["apply"], ["log"]])
def test_every_subcommand_has_help(cli, command, capsys):
    with pytest.raises(SystemExit) as stop:
        run(cli, command + ["--help"], FakeMachine())
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: pre-nixos %s" % " ".join(command)), command


# ------------------------------------------------------------------ plan

def test_plan_passes_only_the_options_given_and_records_the_plan(cli, machine_dir, capsys):
    plan = sample_plan(redundant_main=True)
    machine = FakeMachine(answers=[(0, "ok\n", lambda variables: write_plan(variables["prenixos_storage_plan_path"],
                                                                            plan))])
    argv = ["plan", "--exclude", "serial:HDD1", "--exclude", "model:Samsung*", "--include", "sda",
            "--slash", "20G", "--home", "8GiB", "--swap", "1.5T", "--esp", "512M", "--min-disk-size", "100G",
            "--tolerance", "0.05", "--redundant", "--swap-on-ssd", "--backups"]

    assert run(cli, argv, machine) == 0

    assert machine.ansible.calls == [{
        "playbook": "prenixos.baseline.plan", "options": [], "echo": False, "result_format": "json",
        "variables": {
            "prenixos_storage_plan_path": str(machine_dir / "plan.json"),
            "prenixos_storage_exclude": ["serial:HDD1", "model:Samsung*"],
            "prenixos_storage_include": ["sda"],
            "prenixos_storage_slash_size": "20G", "prenixos_storage_home_size": "8GiB",
            "prenixos_storage_swap_size": "1.5T", "prenixos_storage_esp_size": "512M",
            "prenixos_storage_min_disk_size": "100G", "prenixos_storage_size_tolerance": 0.05,
            "prenixos_storage_redundant_main": True, "prenixos_storage_swap_on_ssd": True,
            "prenixos_storage_backups": True}}]
    out = capsys.readouterr().out
    assert cli.plan_render.render_summary(plan) in out
    assert out.endswith("pre-nixos: plan written to %s\n" % (machine_dir / "plan.json"))


def test_plan_without_options_leaves_the_roles_defaults(cli, machine_dir):
    machine = FakeMachine(answers=[(0, "", lambda variables: write_plan(variables["prenixos_storage_plan_path"],
                                                                        sample_plan()))])
    assert run(cli, ["plan", "-v"], machine) == 0
    assert machine.ansible.calls[0]["variables"] == {"prenixos_storage_plan_path": str(machine_dir / "plan.json")}
    assert machine.ansible.calls[0]["echo"] is True


def test_a_new_plan_keeps_the_previous_one_beside_it(cli, machine_dir, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())
    before = (machine_dir / "plan.json").read_text()
    machine = FakeMachine(answers=[(0, "", lambda variables: write_plan(variables["prenixos_storage_plan_path"],
                                                                        sample_plan(redundant_main=True)))])
    assert run(cli, ["plan", "--redundant"], machine) == 0
    assert (machine_dir / "plan.json.prev").read_text() == before
    assert json.loads((machine_dir / "plan.json").read_text())["options"]["redundant_main"] is True
    assert "(the previous one: %s.prev)" % (machine_dir / "plan.json") in capsys.readouterr().out


def test_a_failed_plan_says_why_and_writes_nothing(cli, machine_dir, capsys):
    machine = FakeMachine(answers=[(2, refusal("exclude: 'serial:NOPE' matches no disk"), None)])
    assert run(cli, ["plan", "--exclude", "serial:NOPE"], machine) == 2
    out = capsys.readouterr().out
    assert "  the plan is refused:\n  exclude: 'serial:NOPE' matches no disk\n" in out
    assert out.endswith("pre-nixos: no plan written; log: /var/log/pre-nixos/test.log\n")
    assert not (machine_dir / "plan.json").exists()


def test_plan_mounts_the_boot_medium_first_boot_names(cli, machine_dir):
    machine = FakeMachine(answers=[(0, "", lambda variables: write_plan(variables["prenixos_storage_plan_path"],
                                                                        sample_plan()))],
                          switches={"prenixos.medium": "2026-01-01-00-00-00-00"})
    run(cli, ["plan"], machine)
    assert machine.mounted == ["2026-01-01-00-00-00-00"]


# ------------------------------------------------------------------ apply

def test_apply_builds_the_recorded_plan_as_first_boot_does(cli, machine_dir, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())
    machine = FakeMachine(answers=[(0, "", None)], switches={"prenixos.medium": "UUID"})

    assert run(cli, ["apply"], machine) == 0

    assert machine.ansible.calls == [{
        "playbook": "prenixos.baseline.first_boot", "options": [], "echo": True, "result_format": "yaml",
        "variables": {"prenixos_firstboot_storage_mode": "apply", "prenixos_storage_wipe": False,
                      "prenixos_storage_plan": str(machine_dir / "plan.json")}}]
    status = json.loads((machine_dir / "status.json").read_text())
    assert (status["command"], status["state"], status["log"]) == (
        "pre-nixos apply", "done", "/var/log/pre-nixos/test.log")
    assert "pre-nixos: building the plan in %s\n" % (machine_dir / "plan.json") in capsys.readouterr().out


def test_apply_of_a_refused_plan_exits_1_and_says_why_though_the_playbook_carried_on(cli, machine_dir, capsys):
    def refuse(_variables):
        status = json.loads((machine_dir / "status.json").read_text())
        status.setdefault("phases", {})["storage_plan"] = {
            "state": "failed", "reason": "the plan is refused, nothing was changed:\n  - array main: raid6 needs"}
        (machine_dir / "status.json").write_text(json.dumps(status))

    write_plan(machine_dir / "plan.json", sample_plan())
    machine = FakeMachine(answers=[(0, "", refuse)], switches={"prenixos.medium": "UUID"})

    assert run(cli, ["apply"], machine) == 1
    assert "pre-nixos: storage_plan failed: the plan is refused, nothing was changed:\n  - array main: raid6 needs" in (
        capsys.readouterr().out)


def test_apply_with_a_plan_file_and_wipe(cli, machine_dir, tmp_path):
    other = tmp_path / "mine.json"
    write_plan(other, sample_plan())
    machine = FakeMachine(answers=[(4, "", None)], switches={"prenixos.medium": "UUID"})

    assert run(cli, ["apply", "--plan", str(other), "--wipe"], machine) == 4

    assert machine.ansible.calls[0]["variables"] == {
        "prenixos_firstboot_storage_mode": "apply", "prenixos_storage_wipe": True,
        "prenixos_storage_plan": str(other)}
    assert machine.mounted == ["UUID"]
    status = json.loads((machine_dir / "status.json").read_text())
    assert (status["command"], status["state"]) == ("pre-nixos apply --plan %s --wipe" % other, "failed")


def test_apply_keeps_the_network_the_kernel_command_line_set(cli, machine_dir):
    # The lan phase runs again: without the switches it would turn a static address back into DHCP, and the
    # operator's SSH session would be gone.
    write_plan(machine_dir / "plan.json", sample_plan())
    switches = {"prenixos.ip": "10.0.2.50/24", "prenixos.gw": "10.0.2.2", "prenixos.dns": "10.0.2.3",
                "prenixos.vlan": "42", "prenixos.storage": "plan", "prenixos.redundant": "1"}
    machine = FakeMachine(answers=[(0, "", None)], switches=switches)
    assert run(cli, ["apply"], machine) == 0
    assert machine.ansible.calls[0]["variables"] == {
        "prenixos_lan_address": ["10.0.2.50/24"], "prenixos_lan_gateway": ["10.0.2.2"],
        "prenixos_lan_dns": ["10.0.2.3"], "prenixos_lan_vlan": "42",
        "prenixos_firstboot_storage_mode": "apply", "prenixos_storage_wipe": False,
        "prenixos_storage_plan": str(machine_dir / "plan.json")}


def test_apply_without_a_plan_file_plans_afresh_and_check_changes_nothing(cli, machine_dir):
    machine = FakeMachine(answers=[(0, "", None)])
    assert run(cli, ["apply", "--check"], machine) == 0
    assert machine.ansible.calls[0]["variables"] == {
        "prenixos_firstboot_storage_mode": "apply", "prenixos_storage_wipe": False}
    assert machine.ansible.calls[0]["options"] == ["--check"]
    assert not (machine_dir / "status.json").exists()


def test_a_wipe_is_refused_when_the_boot_medium_is_not_named(cli, machine_dir, capsys):
    machine = FakeMachine()
    assert run(cli, ["apply", "--wipe"], machine) == 1
    assert machine.ansible.calls == []
    assert capsys.readouterr().err == (
        "pre-nixos: --wipe refused, nothing done: prenixos.wipe=1 refused: the kernel command line does not name "
        "the boot medium (prenixos.medium), so it cannot be kept out of a wipe; planning and building on blank "
        "disks still run\n")


@pytest.mark.parametrize("machine, why", [
    (FakeMachine(running=True), "pre-nixos: first boot is still running; wait for it"),
    (FakeMachine(locked=True), "pre-nixos: another pre-nixos apply is running"),
])
def test_apply_waits_for_no_one_else(cli, machine_dir, machine, why, capsys):
    assert run(cli, ["apply"], machine) == 1
    assert machine.ansible.calls == []
    assert capsys.readouterr().err.startswith(why)


# ------------------------------------------------------------------ status

STATUS = {
    "version": 1, "state": "failed", "started": "2026-03-01T10:00:00+00:00",
    "finished": "2026-03-01T10:02:05+00:00", "log": "/var/log/pre-nixos/firstboot-20260301T100000Z.log",
    "switches": {"prenixos.storage": "apply"},
    "phases": {
        "lan": {"state": "done", "reason": "lan 10.0.2.15/24 via 10.0.2.2", "started": "2026-03-01T10:00:01+00:00",
                "finished": "2026-03-01T10:00:13+00:00"},
        "nixos_config": {"state": "skipped", "reason": "the disks are not built", "started": None,
                         "finished": None},
        "nixos_install": {"state": "pending", "reason": "", "started": None, "finished": None},
        "ssh": {"state": "done", "reason": "", "started": "2026-03-01T10:00:00+00:00",
                "finished": "2026-03-01T10:00:00+00:00"},
        "storage_apply": {"state": "failed", "reason": "mdadm failed:\n  device busy",
                          "started": "2026-03-01T10:00:20+00:00", "finished": "2026-03-01T10:02:05+00:00"},
        "storage_plan": {"state": "done", "reason": "Storage plan (version 2): 2 disk(s) planned",
                         "started": "2026-03-01T10:00:13+00:00", "finished": "2026-03-01T10:00:20+00:00"},
    },
}


def test_status_is_one_line_per_phase_in_first_boots_order(cli, machine_dir, capsys):
    (machine_dir / "status.json").write_text(json.dumps(STATUS, sort_keys=True))
    assert run(cli, ["status"], FakeMachine()) == 0
    assert capsys.readouterr().out == (
        "first boot: failed\n"
        "  started 2026-03-01T10:00:00+00:00, finished 2026-03-01T10:02:05+00:00 (125 s)\n"
        "  lan            done        12 s  lan 10.0.2.15/24 via 10.0.2.2\n"
        "  ssh            done         0 s\n"
        "  storage_plan   done         7 s  Storage plan (version 2): 2 disk(s) planned\n"
        "  storage_apply  failed     105 s  mdadm failed: device busy\n"
        "  nixos_config   skipped        -  the disks are not built\n"
        "  nixos_install  pending        -\n"
        "switches: prenixos.storage=apply\n"
        "log: /var/log/pre-nixos/firstboot-20260301T100000Z.log\n")


def test_status_of_an_apply_and_phases_first_boot_does_not_know(cli):
    status = dict(STATUS, command="pre-nixos apply --wipe", state="done", switches={},
                  phases={"report": {"state": "running", "reason": "", "started": None, "finished": None}})
    assert cli.render_status(status).splitlines()[0] == "pre-nixos apply --wipe: done"
    assert cli.render_status(status).splitlines()[2] == "  report         running        -"


def test_status_before_first_boot_wrote_it_says_so(cli, machine_dir, capsys):
    assert run(cli, ["status"], FakeMachine()) == 0
    assert capsys.readouterr().out.startswith(
        "pre-nixos: no status yet: first boot has not written %s" % (machine_dir / "status.json"))


def test_status_json_is_the_file_as_it_is(cli, machine_dir, capsys):
    (machine_dir / "status.json").write_text('{"phases": {}}\n')
    assert run(cli, ["status", "--json"], FakeMachine()) == 0
    assert capsys.readouterr().out == '{"phases": {}}\n'


# ------------------------------------------------------------------ edit

def replace_with(plan):
    def edit(path):
        write_plan(path, plan)
        return 0
    return edit


def test_an_accepted_edit_becomes_the_plan_and_the_old_one_is_kept(cli, machine_dir, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())
    before = (machine_dir / "plan.json").read_text()
    edited = sample_plan(slash_size=3 * GiB)
    machine = FakeMachine(answers=[(0, "", None)], edits=[replace_with(edited)])

    assert run(cli, ["edit"], machine) == 0

    working = str(machine_dir / "plan.edit.json")
    assert machine.ansible.calls == [{
        "playbook": "prenixos.baseline.plan", "options": [], "echo": False, "result_format": "json",
        "variables": {"prenixos_storage_plan": working, "prenixos_storage_plan_path": ""}}]
    assert json.loads((machine_dir / "plan.json").read_text()) == edited
    assert (machine_dir / "plan.json.prev").read_text() == before
    assert not os.path.exists(working)
    out = capsys.readouterr().out
    assert cli.plan_render.render_summary(edited) in out
    assert out.endswith("pre-nixos: build it with: pre-nixos apply\n")


def test_a_refused_edit_lists_every_problem_and_can_be_edited_again(cli, machine_dir, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())
    edited = sample_plan(slash_size=3 * GiB)
    machine = FakeMachine(
        answers=[(2, refusal("sdz: no such disk", "main: RAID1 needs 2 disks, has 1"), None), (0, "", None)],
        edits=[replace_with({"version": 2, "disks": "sdz"}), replace_with(edited)], replies=["y"])

    assert run(cli, ["edit"], machine) == 0

    out = capsys.readouterr().out
    assert ("pre-nixos: the plan was refused:\n  the plan is refused:\n  sdz: no such disk\n"
            "  main: RAID1 needs 2 disks, has 1\n") in out
    assert machine.questions == ["pre-nixos: edit it again? [y/n] "]
    assert json.loads((machine_dir / "plan.json").read_text()) == edited


@pytest.mark.parametrize("reply", [None, "n"])
def test_a_refused_edit_is_kept_for_another_try(cli, machine_dir, reply, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())
    original = (machine_dir / "plan.json").read_text()
    machine = FakeMachine(answers=[(2, refusal("sdz: no such disk"), None)],
                          edits=[replace_with({"version": 2, "disks": "sdz"})], replies=[reply])

    assert run(cli, ["edit"], machine) == 1

    working = machine_dir / "plan.edit.json"
    assert json.loads(working.read_text()) == {"version": 2, "disks": "sdz"}
    assert (machine_dir / "plan.json").read_text() == original
    assert capsys.readouterr().out.endswith(
        "pre-nixos: your edit is kept at %s: pre-nixos edit continues it\n" % working)

    # the next edit starts from the kept copy
    seen = []
    machine = FakeMachine(edits=[lambda path: seen.append(json.load(open(path))) or 1])
    assert run(cli, ["edit"], machine) == 1
    assert seen == [{"version": 2, "disks": "sdz"}]


def test_an_edit_that_is_not_json_is_refused_without_running_ansible(cli, machine_dir, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())

    def break_it(path):
        with open(path, "a") as handle:
            handle.write("}")
        return 0

    machine = FakeMachine(edits=[break_it])
    assert run(cli, ["edit"], machine) == 1
    assert machine.ansible.calls == []
    assert "is not JSON: Extra data: line" in capsys.readouterr().out


def test_an_unchanged_edit_changes_nothing(cli, machine_dir, capsys):
    write_plan(machine_dir / "plan.json", sample_plan())
    machine = FakeMachine(edits=[lambda path: 0])
    assert run(cli, ["edit"], machine) == 0
    assert machine.ansible.calls == []
    assert sorted(os.listdir(machine_dir)) == ["plan.json"]
    assert "no change" in capsys.readouterr().out


def test_edit_needs_a_plan(cli, machine_dir, capsys):
    assert run(cli, ["edit"], FakeMachine()) == 1
    assert capsys.readouterr().err == "pre-nixos: no plan at %s: make one with pre-nixos plan\n" % (
        machine_dir / "plan.json")


def test_edit_of_another_plan_file_installs_it_there(cli, machine_dir, tmp_path, capsys):
    other = tmp_path / "other.json"
    write_plan(other, sample_plan())
    edited = sample_plan(backups=True)
    machine = FakeMachine(answers=[(0, "", None)], edits=[replace_with(edited)])
    assert run(cli, ["edit", "--plan", str(other)], machine) == 0
    assert json.loads(other.read_text()) == edited
    assert not (machine_dir / "plan.json").exists()
    assert capsys.readouterr().out.endswith("build it with: pre-nixos apply --plan %s\n" % other)


@pytest.mark.parametrize("environ, found, command", [
    ({"EDITOR": "emacs -nw"}, {"vi", "nano"}, ["emacs", "-nw"]),
    ({}, {"vi", "nano"}, ["/usr/bin/vi"]),
    ({"EDITOR": " "}, {"nano"}, ["/usr/bin/nano"]),
    ({}, set(), None),
])
def test_the_editor_is_editor_else_vi_else_nano(cli, environ, found, command):
    assert cli.editor_command(environ, which=lambda name: "/usr/bin/" + name if name in found else None) == command


# ------------------------------------------------------------------ log

def test_log_prints_the_newest_log_with_its_path(cli, machine_dir, capsys):
    (machine_dir / "firstboot-20260301T100000Z.log").write_text("first boot\n")
    (machine_dir / "plan-20260301T110000Z.log").write_text("a plan\n")
    os.utime(machine_dir / "firstboot-20260301T100000Z.log", (1, 1))
    os.symlink("firstboot-20260301T100000Z.log", machine_dir / "firstboot.log")
    machine = FakeMachine()

    assert run(cli, ["log"], machine) == 0
    assert capsys.readouterr().out == "==> %s <==\na plan\n" % (machine_dir / "plan-20260301T110000Z.log")

    os.utime(machine_dir / "firstboot-20260301T100000Z.log")  # newest now; its link firstboot.log is not a log
    assert run(cli, ["log"], machine) == 0
    assert capsys.readouterr().out.startswith("==> %s <==\n" % (machine_dir / "firstboot-20260301T100000Z.log"))

    assert run(cli, ["log", "--first-boot", "--follow"], machine) == 0
    assert capsys.readouterr().out == "==> %s <==\nfirst boot\n" % (machine_dir / "firstboot-20260301T100000Z.log")
    assert machine.followed == str(machine_dir / "firstboot-20260301T100000Z.log")


def test_no_log_yet(cli, machine_dir, capsys):
    assert run(cli, ["log"], FakeMachine()) == 1
    assert capsys.readouterr().err == "pre-nixos: no log in %s yet\n" % machine_dir


# ------------------------------------------------------------------ reading ansible-playbook

def test_failure_messages_are_read_from_every_failed_task(cli):
    output = (refusal("one") + "fatal: [localhost]: FAILED! => {\n    \"msg\": [\"a\", \"b\"]\n}\n"
              + "fatal: [localhost]: FAILED! => not json\n")
    assert cli.failure_messages(output) == ["the plan is refused:\none", "a\nb", "not json"]
    assert cli.failure_messages("ok: [localhost]\n") == []
