# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``pre-nixos``, the operator's command on the boot image (/usr/local/bin/pre-nixos runs this file).

  pre-nixos status                       what first boot did: each phase, its state, seconds and reason
  pre-nixos plan [options]               plan the disks present: the tree, and the plan file
  pre-nixos edit [--plan FILE]           change the plan in $EDITOR; checked against the disks before it is kept
  pre-nixos apply [--plan FILE] [--wipe] [--check]
                                         build the plan and write the NixOS configuration, as first boot does
  pre-nixos log [--first-boot] [--follow]  the newest log

No second implementation: ``plan`` and ``edit`` run the collection's plan playbook (the storage role in mode
plan), ``apply`` runs the first-boot playbook, with ansible-playbook from the image's venv through
``pre_nixos_firstboot.run_playbook``, in first boot's environment. Every run is logged under
/var/log/pre-nixos/ (``plan-*.log``, ``edit-*.log``, ``apply-*.log``). The variables each subcommand passes
are ``plan_variables``, ``check_variables`` and ``apply_variables``.

Python 3 standard library only (and the collection's module_utils, as first boot).
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import pre_nixos_firstboot as firstboot  # noqa: E402, I001  (beside this file; it puts the collection on the path)
from ansible_collections.prenixos.baseline.plugins.module_utils import (  # noqa: E402
    disk_selectors,
    plan_input,
    plan_render,
)
from ansible_collections.prenixos.baseline.plugins.module_utils import status as statusfile  # noqa: E402

PLAN_PLAYBOOK = "prenixos.baseline.plan"
PLAN_PATH = os.path.join(firstboot.LOG_DIR, "plan.json")
# Held by a running `pre-nixos apply`, so that two never build at once.
LOCK_PATH = "/run/pre-nixos/pre-nixos.lock"
# "fatal: [localhost]: FAILED! => {...}": a failed task's result (JSON in the runs whose output is read)
FAILED = re.compile(r"^fatal: \[[^\]]*\]: FAILED! => ", re.MULTILINE)
SIZE_HELP = "bytes, or a number with a binary unit K, M, G, T or P (20G, 20GiB, 512M, 1.5T)"


class Refusal(Exception):
    """What the operator asked for cannot be done; the message says why and what to do."""


def say(message):
    firstboot.say(message)


# ------------------------------------------------------------------ arguments

def size_argument(text):
    """A size the storage role accepts (checked by its own parser), as the operator wrote it."""
    try:
        plan_input.parse_size("size", text)
    except plan_input.PlanError:
        raise argparse.ArgumentTypeError("%r is not a size: %s" % (text, SIZE_HELP)) from None
    return text.strip()


def tolerance_argument(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("%r is not a fraction from 0 to below 1 (0.01 is 1 %%)" % text)
    return value


def selector_argument(text):
    """A disk selector the storage role accepts (checked by its own parser)."""
    try:
        return disk_selectors.parse_selector(text, "disk selector").text
    except plan_input.PlanError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def plan_file_argument(text):
    path = os.path.abspath(text)
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError("no plan file at %s" % path)
    return path


def parser():
    formatter = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(
        prog="pre-nixos", formatter_class=formatter,
        description="The boot image's work by hand: what first boot did, the storage plan, building it.",
        epilog="Plan, look, edit, build:\n  pre-nixos plan --redundant\n  pre-nixos edit\n  pre-nixos apply\n\n"
               "Each subcommand has --help. Logs: /var/log/pre-nixos/, the plan: %s." % PLAN_PATH)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    status = commands.add_parser(
        "status", formatter_class=formatter, help="what first boot did, phase by phase",
        description="Each phase of the last first boot (or pre-nixos apply): its state, how long it took\n"
                    "and why. Read from %s." % firstboot.STATUS_PATH)
    status.add_argument("--json", action="store_true", help="print the status file as it is")

    plan = commands.add_parser(
        "plan", formatter_class=formatter, help="plan the disks present: the tree and the plan file",
        description="Plan the disks present as first boot does (no disk is changed), show the plan as a tree\n"
                    "and record it in %s (the previous one is kept as plan.json.prev).\n"
                    "Options left out keep the storage role's defaults." % PLAN_PATH,
        epilog="SEL is a disk selector: sda, /dev/sda, serial:S3Z1NB0K123, wwn:0x5002538e40a1b2c3,\n"
               "by-id:ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K123, model:Samsung*, or a bare word matching any of them.\n"
               "SIZE is %s." % SIZE_HELP)
    plan.add_argument("--exclude", metavar="SEL", action="append", type=selector_argument, default=[],
                      help="leave this disk out (repeatable)")
    plan.add_argument("--include", metavar="SEL", action="append", type=selector_argument, default=[],
                      help="plan only these disks (repeatable)")
    plan.add_argument("--slash", metavar="SIZE", type=size_argument, help="size of / (main/slash)")
    plan.add_argument("--home", metavar="SIZE", type=size_argument, help="largest size of /home (main/home)")
    plan.add_argument("--swap", metavar="SIZE", type=size_argument, help="size of swap (default: the RAM size)")
    plan.add_argument("--esp", metavar="SIZE", type=size_argument, help="size of each EFI system partition")
    plan.add_argument("--min-disk-size", metavar="SIZE", type=size_argument,
                      help="disks smaller than this are left out")
    plan.add_argument("--tolerance", metavar="F", type=tolerance_argument,
                      help="disks within this fraction of the smallest form one group (default 0.01)")
    plan.add_argument("--redundant", action="store_true", help="main as RAID1/5/6 instead of RAID0")
    plan.add_argument("--swap-on-ssd", action="store_true", help="swap may go on SSDs when no HDD group holds it")
    plan.add_argument("--backups", action="store_true", help="large/data with one inode per 2 KiB")
    plan.add_argument("-v", "--verbose", action="store_true", help="show ansible-playbook's output as it runs")

    edit = commands.add_parser(
        "edit", formatter_class=formatter, help="change the plan in $EDITOR, checked before it is kept",
        description="Open a working copy of the plan in $EDITOR (else vi, else nano). Once saved, the storage\n"
                    "role checks it against the disks present (nothing is built). Accepted, it becomes the plan\n"
                    "file (the previous one is kept as FILE.prev). Refused, every problem is shown and the\n"
                    "working copy is kept (plan.edit.json beside plan.json): edit it again now, or later with\n"
                    "pre-nixos edit.")
    edit.add_argument("--plan", metavar="FILE", type=plan_file_argument,
                      help="the plan file to change (default %s)" % PLAN_PATH)

    apply = commands.add_parser(
        "apply", formatter_class=formatter, help="build the plan and write the NixOS configuration",
        description="Run first boot's playbook again with storage mode apply: SSH, LAN, build the plan on the\n"
                    "disks, write the NixOS configuration (nixos-install is not run). The plan built is\n"
                    "--plan FILE, else %s when it exists (what pre-nixos plan or edit,\n"
                    "or first boot, recorded), else a fresh plan of the disks present, as first boot makes it.\n"
                    "Disks that hold anything the plan did not make are left alone unless --wipe is given."
                    % PLAN_PATH)
    apply.add_argument("--plan", metavar="FILE", type=plan_file_argument, help="build this plan")
    apply.add_argument("--wipe", action="store_true",
                       help="tear down what the planned disks hold first (never the boot medium)")
    apply.add_argument("--check", action="store_true",
                       help="ansible-playbook --check: show what would be done, change nothing")

    log = commands.add_parser(
        "log", formatter_class=formatter, help="the newest log",
        description="Print the newest log under %s (first boot's or a pre-nixos run's),\n"
                    "with its path." % firstboot.LOG_DIR)
    log.add_argument("--first-boot", action="store_true", help="the last first boot's log")
    log.add_argument("-f", "--follow", action="store_true", help="keep printing what is added (tail -F)")
    return top


# ------------------------------------------------------------------ the variables each subcommand passes

PLAN_OPTIONS = (  # argument -> storage role variable
    ("exclude", "prenixos_storage_exclude"),
    ("include", "prenixos_storage_include"),
    ("slash", "prenixos_storage_slash_size"),
    ("home", "prenixos_storage_home_size"),
    ("swap", "prenixos_storage_swap_size"),
    ("esp", "prenixos_storage_esp_size"),
    ("min_disk_size", "prenixos_storage_min_disk_size"),
    ("tolerance", "prenixos_storage_size_tolerance"),
    ("redundant", "prenixos_storage_redundant_main"),
    ("swap_on_ssd", "prenixos_storage_swap_on_ssd"),
    ("backups", "prenixos_storage_backups"),
)


def plan_variables(args, plan_path):
    """The plan playbook's variables: the plan recorded at ``plan_path``; only the options given."""
    variables = {"prenixos_storage_plan_path": plan_path}
    for argument, variable in PLAN_OPTIONS:
        value = getattr(args, argument)
        if value not in (None, False, []):
            variables[variable] = value
    return variables


def check_variables(plan_file):
    """The plan playbook's variables to check a plan against the disks present: nothing recorded."""
    return {"prenixos_storage_plan": plan_file, "prenixos_storage_plan_path": ""}


def apply_variables(plan_file, wipe, switches=None):
    """The first-boot playbook's variables: build ``plan_file`` (None: plan afresh), wipe only when asked;
    the network switches of the kernel command line as first boot had them (its lan phase runs again)."""
    variables = dict(firstboot.network_vars(switches or {}))
    variables.update(prenixos_firstboot_storage_mode="apply", prenixos_storage_wipe=wipe)
    if plan_file:
        variables["prenixos_storage_plan"] = plan_file
    return variables


# ------------------------------------------------------------------ reading results

def failure_messages(output):
    """The ``msg`` of every failed task in ansible-playbook's output (results as JSON)."""
    messages = []
    decoder = json.JSONDecoder()
    for match in FAILED.finditer(output):
        try:
            result, _end = decoder.raw_decode(output, match.end())
        except ValueError:
            rest = output[match.end():].partition("\n")[0].strip()
            if rest:
                messages.append(rest)
            continue
        message = result.get("msg", "") if isinstance(result, dict) else result
        if isinstance(message, list):
            message = "\n".join(str(line) for line in message)
        messages.append(str(message) or json.dumps(result, sort_keys=True))
    return messages


def plan_tree(path):
    """The plan at ``path`` as the storage role shows it (plan_render.render_summary)."""
    try:
        with open(path) as handle:
            return plan_render.render_summary(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as error:
        return "(the plan at %s cannot be drawn: %s: %s)\n" % (path, type(error).__name__, error)


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def working_copy_path(plan_path):
    """Where an edit of ``plan_path`` is kept until it is accepted: plan.json -> plan.edit.json."""
    root, ext = os.path.splitext(plan_path)
    return root + ".edit" + (ext or ".json")


def seconds_between(started, finished):
    try:
        begin = datetime.datetime.fromisoformat(started)
        end = datetime.datetime.fromisoformat(finished) if finished else datetime.datetime.now(begin.tzinfo)
    except (TypeError, ValueError):
        return None
    return int((end - begin).total_seconds())


def render_status(status):
    """The status file for people: the run, then one line per phase (state, seconds, reason)."""
    run = status.get("command") or "first boot"
    head = "%s: %s" % (run, status.get("state", "unknown"))
    if status.get("reason"):
        head += ": " + status["reason"]
    spent = seconds_between(status.get("started"), status.get("finished"))
    when = "started %s" % status.get("started")
    if status.get("finished"):
        when += ", finished %s" % status["finished"]
    if spent is not None:
        when += " (%d s%s)" % (spent, "" if status.get("finished") else " so far")
    lines = [head, "  " + when]
    phases = status.get("phases", {})
    order = [name for name in statusfile.PHASES if name in phases] + sorted(set(phases) - set(statusfile.PHASES))
    for name in order:
        entry = phases[name] if isinstance(phases[name], dict) else {}
        seconds = seconds_between(entry.get("started"), entry.get("finished")) if entry.get("started") else None
        reason = " ".join(str(entry.get("reason") or "").split())
        lines.append(("  %-14s %-8s %7s  %s" % (
            name, entry.get("state", "?"), "-" if seconds is None else "%d s" % seconds, reason)).rstrip())
    if status.get("switches"):
        lines.append("switches: %s" % ", ".join("%s=%s" % item for item in sorted(status["switches"].items())))
    if status.get("log"):
        lines.append("log: %s" % status["log"])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the machine

class Ansible:
    """ansible-playbook for one pre-nixos command, as first boot runs it; every run of the command appended to
    one log, LOG_DIR/KIND-<time>.log."""

    def __init__(self, kind, mitogen=True):
        self.kind = kind
        self.mitogen = mitogen
        self.log_path = None
        self._log = None

    def open(self):
        if self._log is None:
            self.log_path, self._log = firstboot.open_log(self.kind)
        return self.log_path

    def run(self, playbook, variables, options=(), echo=True, result_format="yaml"):
        """Returns ``(exit code, output)``; ``failure_messages`` reads the output of a run with results as JSON."""
        self.open()
        start = self._log.tell()
        rc = firstboot.run_playbook(variables, self._log, self.mitogen, playbook, options, echo, result_format)
        with open(self.log_path) as handle:
            handle.seek(start)
            return rc, handle.read()


class Machine:
    """What the subcommands do beyond their files; tests give them a fake one."""

    def __init__(self, kind):
        self.switches, _warnings = firstboot.parse_cmdline((read_bytes("/proc/cmdline") or b"").decode())
        self.ansible = Ansible(kind, mitogen=self.switches.get("prenixos.mitogen") != "0")
        self._lock = None

    def mount(self, uuid):
        return firstboot.mount_medium(uuid)

    def first_boot_running(self):
        try:
            state = subprocess.run(["systemctl", "is-active", "pre-nixos.service"], capture_output=True,
                                   text=True, check=False).stdout.strip()
        except OSError:
            return False
        return state == "activating"

    def lock(self):
        """True when no other pre-nixos apply runs (this one then holds the lock until it exits)."""
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        self._lock = open(LOCK_PATH, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def edit(self, path):
        command = editor_command(os.environ)
        if command is None:
            raise Refusal("no editor: set EDITOR (neither vi nor nano is installed)")
        try:
            return subprocess.run(command + [path], check=False).returncode
        except OSError as error:
            raise Refusal("the editor %s cannot be run: %s" % (command[0], error)) from None

    def ask(self, question):
        """The operator's answer; None when nobody can answer (stdin is no terminal, or closed)."""
        if not sys.stdin.isatty():
            return None
        try:
            return input(question)
        except EOFError:
            return None

    def follow(self, path):
        os.execvp("tail", ["tail", "-n", "0", "-F", path])


def editor_command(environ, which=shutil.which):
    """$EDITOR (with its arguments), else vi, else nano; None when there is none."""
    if environ.get("EDITOR", "").strip():
        return shlex.split(environ["EDITOR"])
    for name in ("vi", "nano"):
        if which(name):
            return [which(name)]
    return None


def mount_medium(machine):
    """As first boot: the boot medium the kernel command line names is mounted, so that the storage role
    knows it and keeps it out of any plan; says so when it cannot be."""
    uuid = machine.switches.get("prenixos.medium")
    problem = machine.mount(uuid) if uuid else None
    if problem:
        say(problem)


# ------------------------------------------------------------------ subcommands

def cmd_status(args, machine):
    try:
        with open(firstboot.STATUS_PATH) as handle:
            text = handle.read()
        status = json.loads(text)
    except FileNotFoundError:  # not yet: a state, not an error
        say("no status yet: first boot has not written %s (it starts once the system is up; "
            "systemctl status pre-nixos tells where it is)" % firstboot.STATUS_PATH)
        return 0
    except ValueError as error:
        raise Refusal("%s cannot be read: %s" % (firstboot.STATUS_PATH, error)) from None
    if not isinstance(status, dict):
        raise Refusal("%s holds no status" % firstboot.STATUS_PATH)
    sys.stdout.write(text if args.json else render_status(status))
    return 0


def cmd_plan(args, machine):
    variables = plan_variables(args, PLAN_PATH)
    mount_medium(machine)
    before = read_bytes(PLAN_PATH)
    say("planning the disks present (nothing is changed on them)")
    rc, output = machine.ansible.run(PLAN_PLAYBOOK, variables, echo=args.verbose, result_format="json")
    if rc != 0:
        for message in failure_messages(output) or ["ansible-playbook exited with code %d" % rc]:
            sys.stdout.write(indent(message))
        say("no plan written; log: %s" % machine.ansible.log_path)
        return rc
    after = read_bytes(PLAN_PATH)
    if before is not None and before != after:
        with open(PLAN_PATH + ".prev", "wb") as handle:
            handle.write(before)
    sys.stdout.write(plan_tree(PLAN_PATH))
    say("plan written to %s%s" % (PLAN_PATH, " (the previous one: %s.prev)" % PLAN_PATH
                                  if before is not None and before != after else ""))
    if os.path.exists(working_copy_path(PLAN_PATH)):
        say("an unfinished edit of the earlier plan is kept at %s: pre-nixos edit continues it; remove it to "
            "edit this plan" % working_copy_path(PLAN_PATH))
    return 0


def check_plan(path, machine):
    """Every problem the storage role finds with the plan at ``path`` on this machine; [] when accepted."""
    try:
        with open(path) as handle:
            plan = json.load(handle)
    except ValueError as error:
        return ["%s is not JSON: %s" % (path, error)]
    if not isinstance(plan, dict):
        return ["%s holds no plan: a plan is a JSON object" % path]
    say("checking the plan against the disks present (nothing is changed on them)")
    mount_medium(machine)
    rc, output = machine.ansible.run(PLAN_PLAYBOOK, check_variables(path), echo=False, result_format="json")
    if rc == 0:
        return []
    return failure_messages(output) or ["ansible-playbook exited with code %d; see %s"
                                        % (rc, machine.ansible.log_path)]


def cmd_edit(args, machine):
    plan_path = args.plan or PLAN_PATH
    working = working_copy_path(plan_path)
    again = "pre-nixos edit" + (" --plan %s" % plan_path if args.plan else "")
    if os.path.exists(working):
        say("continuing the edit kept at %s (remove it to start again from %s)" % (working, plan_path))
    elif not os.path.isfile(plan_path):
        raise Refusal("no plan at %s: make one with pre-nixos plan" % plan_path)
    else:
        shutil.copyfile(plan_path, working)
    while True:
        rc = machine.edit(working)
        if rc != 0:
            raise Refusal("the editor exited with code %d; your edit is kept at %s (%s continues it)"
                          % (rc, working, again))
        if read_bytes(working) == read_bytes(plan_path):
            os.unlink(working)
            say("no change: %s is left as it was" % plan_path)
            return 0
        problems = check_plan(working, machine)
        if not problems:
            break
        say("the plan was refused:")
        for problem in problems:
            sys.stdout.write(indent(problem))
        answer = machine.ask("pre-nixos: edit it again? [y/n] ")
        if answer is None or answer.strip().lower() not in ("y", "yes"):
            say("your edit is kept at %s: %s continues it" % (working, again))
            return 1
    if os.path.exists(plan_path):
        shutil.copyfile(plan_path, plan_path + ".prev")
    os.replace(working, plan_path)
    sys.stdout.write(plan_tree(plan_path))
    say("plan accepted and written to %s (the previous one: %s.prev)" % (plan_path, plan_path))
    say("build it with: pre-nixos apply%s" % (" --plan %s" % plan_path if args.plan else ""))
    return 0


def cmd_apply(args, machine):
    if machine.first_boot_running():
        raise Refusal("first boot is still running; wait for it (pre-nixos status, pre-nixos log --follow)")
    if not machine.lock():
        raise Refusal("another pre-nixos apply is running")
    plan_file = args.plan or (PLAN_PATH if os.path.isfile(PLAN_PATH) else None)
    # first boot's rule: a wipe needs the boot medium mounted, so that the storage role keeps it out
    variables, note = firstboot.protect_medium(
        machine.switches, apply_variables(plan_file, args.wipe, machine.switches), mount=machine.mount)
    if args.wipe and not variables["prenixos_storage_wipe"]:
        raise Refusal("--wipe refused, nothing done: " + note)
    if note:
        say(note)
    say("building the plan in %s" % plan_file if plan_file
        else "no plan at %s: planning the disks present afresh, then building, as first boot does" % PLAN_PATH)
    options = ["--check"] if args.check else []
    log_path = machine.ansible.open()
    if not args.check:
        status = statusfile.new_status()
        status["command"] = "pre-nixos apply" + ("" if args.plan is None else " --plan " + args.plan) + (
            " --wipe" if args.wipe else "")
        status["log"] = log_path
        statusfile.save(status, firstboot.STATUS_PATH)
    rc = 1
    try:
        rc, _output = machine.ansible.run(firstboot.PLAYBOOK, variables, options, echo=True)
    finally:
        if not args.check:
            status = firstboot.close_status(rc, log_path)
            say("%s: %s (pre-nixos status; log: %s)" % (status["command"], status["state"], log_path))
    if args.check:
        return rc
    # the playbook carries on past a failed phase (first boot must); the operator's command must not end in 0
    failed = [(name, phase) for name, phase in status.get("phases", {}).items() if phase.get("state") == "failed"]
    for name, phase in failed:
        say("%s failed: %s" % (name, phase.get("reason") or "see the log"))
    return rc or (1 if failed else 0)


def cmd_log(args, machine):
    if args.first_boot:
        path = os.path.realpath(os.path.join(firstboot.LOG_DIR, "firstboot.log"))
        if not os.path.isfile(path):
            raise Refusal("no first-boot log in %s yet" % firstboot.LOG_DIR)
    else:
        logs = [p for p in glob.glob(os.path.join(firstboot.LOG_DIR, "*.log")) if not os.path.islink(p)]
        if not logs:
            raise Refusal("no log in %s yet" % firstboot.LOG_DIR)
        path = max(logs, key=lambda p: (os.path.getmtime(p), p))
    sys.stdout.write("==> %s <==\n" % path)
    sys.stdout.write((read_bytes(path) or b"").decode(errors="replace"))
    sys.stdout.flush()
    if args.follow:
        machine.follow(path)
    return 0


COMMANDS = {"status": cmd_status, "plan": cmd_plan, "edit": cmd_edit, "apply": cmd_apply, "log": cmd_log}


def indent(text):
    return "".join("  %s\n" % line for line in str(text).splitlines() or [""])


def run(argv, machine_for=Machine):
    """Parse ``argv`` (errors: argparse's message, exit 2), then run the subcommand; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, machine_for(args.command))
    except Refusal as refusal:
        sys.stdout.flush()
        sys.stderr.write("pre-nixos: %s\n" % refusal)
        return 1


def main():
    try:
        return run(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("\npre-nixos: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
