"""Print the figures of a first boot on the demo machine, and the plain-script floor (figures, not tests).

Run from the repository root after ``make iso``: ``python tests/bench/bench_vm.py`` (``make bench``
does both). Boots tests/vm/machines/default.json twice under QEMU (KVM when it works, else TCG):

1. as an operator would: QEMU start -> SSH ready, ``pre-nixos.service`` from start to end and per
   phase (from /run/pre-nixos/status.json), then the first-boot playbook run a second time
   (nothing to change);
2. with ``prenixos.storage=skip``, so the disks stay blank: the commands ``storage_apply`` would run
   (its check mode) are run by a plain shell script instead, with ``udevadm settle`` after each one
   that makes devices. That is the floor the product's storage phase is measured against.

Also in the first machine: ``module_task_s``, the median seconds of one trivial module task
(``ansible.builtin.ping``) in the guest's own Ansible as first boot runs it (under Mitogen where the
image has it), and ``empty_playbook_s``, the median of a playbook with no task; with Mitogen, also
``module_task_plain_s`` and ``empty_playbook_plain_s`` under Ansible's own strategy
(``prenixos.mitogen=0``). The re-run of the first-boot playbook runs as first boot does too.
``--baseline REV`` (``make bench BASELINE=REV``) builds that revision's image too, with the same key,
boots both the same way one after the other and prints each figure for both with the ratio
(this / baseline); build/bench.json then also holds ``baseline`` and ``ratios``.

Writes everything, with the planner's figures, to build/bench.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
sys.path.insert(0, HERE)

import bench_planner  # noqa: E402
import qemu  # noqa: E402

ISO = os.path.join(ROOT, "build", "pre-nixos.iso")
KEY = os.path.join(ROOT, "build", "id_ed25519")
WORK = os.path.join(ROOT, "build", "bench")
ANSIBLE_ENV = ("ANSIBLE_COLLECTIONS_PATH=/usr/share/pre-nixos/collections ANSIBLE_PIPELINING=1 ANSIBLE_NOCOLOR=1 "
               "ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0")
VENV = "/opt/pre-nixos/venv/bin"
# Asks the image's first-boot wrapper for the Ansible settings it runs the playbook with (Mitogen's strategy, or
# Ansible's own with mitogen=False); an image whose wrapper does not say (the baseline's) gets ANSIBLE_ENV.
WRAPPER_ENV = ("python3 -Ic 'import json, sys; sys.path.insert(0, \"/usr/local/lib/pre-nixos\"); "
               "import pre_nixos_firstboot as wrapper; env = getattr(wrapper, \"ansible_environment\", None); "
               "print(json.dumps(env and {k: v for k, v in env(mitogen=%s).items() if k.startswith(\"ANSIBLE_\")}))'")
# The commands of the storage build that make device nodes: a script has to wait for udev after them.
MAKES_DEVICES = ("sgdisk", "partx", "mdadm", "pvcreate", "vgcreate", "lvcreate")
# Prefixes every line with the seconds since the epoch, as journalctl -o short-unix does (for slowest_tasks).
STAMP = "python3 -uc 'import sys, time\nfor line in sys.stdin: print(\"%.2f\" % time.time(), line, end=\"\")'"
CHECK_PLAYBOOK = """- name: The commands of the storage build
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Gather the disks
      prenixos.baseline.disk_facts:
    - name: Plan
      prenixos.baseline.storage_plan:
        disks: "{{ ansible_facts.prenixos_disks }}"
      register: plan
    - name: What storage_apply would run
      prenixos.baseline.storage_apply:
        plan: "{{ plan.plan }}"
      check_mode: true
      register: build
    - name: Write them down
      ansible.builtin.copy:
        content: "{{ build.commands | to_json }}"
        dest: /tmp/build-commands.json
        mode: "0644"
      check_mode: false
"""
TRIVIAL_TASKS = 7
PING_PLAYBOOK = "- hosts: localhost\n  gather_facts: false\n  tasks:\n%s" % "".join(
    "    - name: ping %d\n      ansible.builtin.ping:\n" % n for n in range(TRIVIAL_TASKS))
EMPTY_PLAYBOOK = "- hosts: localhost\n  gather_facts: false\n  tasks: []\n"
# What the baseline image is measured on: one revision's tree and build output under build/baseline/.
BASELINE_DIR = os.path.join(ROOT, "build", "baseline")
# The figures compared with the baseline (lower is better for each).
COMPARED = ("ssh_ready_s", "first_boot_s", "rerun_s", "module_task_s", "empty_playbook_s", "storage_ratio",
            "iso_mib")


def guest(state, command, timeout=3600):
    """Run ``command`` (a shell line) in the guest; returns its stdout."""
    result = subprocess.run(qemu.ssh_command(state, KEY, command), capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise SystemExit("in the guest, %r failed (%d): %s" % (command, result.returncode, result.stderr[-2000:]))
    return result.stdout


def timed(state, command, stamped=False):
    """Seconds ``command`` takes in the guest, measured by the guest's own clock; its output goes to
    /tmp/timed.log (each line prefixed with the time, when ``stamped``)."""
    out = guest(state, "s=$(date +%%s.%%N); ( %s ) 2>&1 | %s > /tmp/timed.log; rc=${PIPESTATUS[0]}; "
                       "e=$(date +%%s.%%N); echo \"$s $e $rc\"" % (command, STAMP if stamped else "cat"))
    started, ended, rc = out.split()
    if rc != "0":
        raise SystemExit("in the guest, %r failed (%s): %s" % (command, rc, guest(state, "tail -40 /tmp/timed.log")))
    return round(float(ended) - float(started), 1)


def boot(name, machine, iso):
    workdir = os.path.join(WORK, name)
    state = qemu.start(machine, iso, workdir)
    ssh_ready = qemu.wait_ssh(workdir, KEY)
    guest(state, "while s=$(systemctl show -P ActiveState pre-nixos.service); [ $s = activating ] || "
                 "[ $s = inactive ]; do sleep 2; done")
    return workdir, state, round(ssh_ready, 1)


def since_start(state, stamp):
    """Seconds from QEMU's start (host clock) to a guest timestamp (the guest's clock comes from the host)."""
    return round(datetime.datetime.fromisoformat(stamp).timestamp() - state["started"], 1)


def phase_seconds(status):
    seconds = {}
    for name, phase in status["phases"].items():
        if phase.get("started") and phase.get("finished"):
            started, finished = (datetime.datetime.fromisoformat(phase[key]) for key in ("started", "finished"))
            seconds[name] = round((finished - started).total_seconds(), 1)
    return seconds


def service_seconds(state):
    props = dict(line.split("=", 1) for line in guest(
        state, "systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic "
               "pre-nixos.service").split())
    return round((int(props["ExecMainExitTimestampMonotonic"]) - int(props["ExecMainStartTimestampMonotonic"]))
                 / 1e6, 1)


def slowest_tasks(log, count=8):
    """The tasks that took longest, from playbook output whose lines start with seconds since the epoch."""
    spans, previous = [], None
    for line in log.splitlines():
        stamp, _space, text = line.partition(" ")
        try:
            stamp = float(stamp)
        except ValueError:
            continue
        marker = next((text.index(m) for m in ("TASK [", "PLAY RECAP") if m in text), None)
        if marker is not None:
            if previous is not None:
                spans.append((round(stamp - previous[0], 1), previous[1]))
            previous = (stamp, text[marker:].split("]", 1)[0][len("TASK ["):])
    return dict((name, seconds) for seconds, name in sorted(spans, reverse=True)[:count])


def first_boot_env(state, mitogen=True):
    """The Ansible settings first boot runs with on this image, as ``K=V`` words for a shell."""
    env = json.loads(guest(state, WRAPPER_ENV % mitogen))
    return " ".join("%s=%s" % (key, shlex.quote(value)) for key, value in sorted(env.items())) if env else ANSIBLE_ENV


def task_figures(state, env, suffix=""):
    """Median seconds of one trivial module task, and of an empty playbook, in the guest's own Ansible."""
    play = "%s %s/ansible-playbook /tmp/%%s.yml -i localhost, -c local -e ansible_python_interpreter=%s/python" % (
        env, VENV, VENV)
    guest(state, "cat > /tmp/ping.yml <<'EOF'\n%sEOF\ncat > /tmp/empty.yml <<'EOF'\n%sEOF" % (
        PING_PLAYBOOK, EMPTY_PLAYBOOK))
    empty = [timed(state, play % "empty") for _run in range(3)]
    timed(state, play % "ping", stamped=True)
    spans = [seconds for name, seconds in slowest_tasks(guest(state, "cat /tmp/timed.log"), TRIVIAL_TASKS + 1).items()
             if name.startswith("ping ")]
    return {"module_task%s_s" % suffix: round(statistics.median(spans), 2) if spans else None,
            "empty_playbook%s_s" % suffix: round(statistics.median(empty), 2)}


def first_boot_figures(machine, iso):
    workdir, state, ssh_ready = boot("firstboot", machine, iso)
    try:
        status = json.loads(guest(state, "cat /run/pre-nixos/status.json"))
        figures = {"accel": state["accel"], "ssh_ready_s": ssh_ready, "first_boot_s": service_seconds(state),
                   "first_boot_state": status["state"], "phases_s": phase_seconds(status),
                   "storage_started_s": since_start(state, status["phases"]["storage_plan"]["started"])}
        figures["ssh_before_storage"] = figures["ssh_ready_s"] < figures["storage_started_s"]
        figures["storage_apply_timing"] = status["phases"]["storage_apply"].get("details", {}).get("timing")
        env = first_boot_env(state)
        figures["mitogen"] = "ANSIBLE_STRATEGY=mitogen" in env
        again = "%s %s/ansible-playbook prenixos.baseline.first_boot -i localhost, -c local " \
                "-e ansible_python_interpreter=%s/python" % (env, VENV, VENV)
        # Right after first boot, as an operator would, while the new arrays may still sync in the background;
        # then, once they are in sync, the figure compared (the playbook's own cost, not the arrays').
        figures["rerun_syncing_s"] = timed(state, again)
        figures["sync_wait_s"] = timed(state, "for i in $(seq 180); do grep -qE 'resync|recovery' /proc/mdstat "
                                              "|| break; sleep 5; done")
        rerun = timed(state, again, stamped=True)
        recap = guest(state, "grep -E 'localhost +: ok=' /tmp/timed.log").split()
        figures["rerun_s"] = rerun
        figures["rerun_recap"] = " ".join(f for f in recap if f.split("=")[0] in ("ok", "changed", "failed"))
        figures["rerun_slowest_tasks_s"] = slowest_tasks(guest(state, "cat /tmp/timed.log"))
        figures["first_boot_slowest_tasks_s"] = slowest_tasks(guest(
            state, "journalctl -b -u pre-nixos.service -o short-unix --no-pager"))
        figures.update(task_figures(state, env))
        if figures["mitogen"]:  # and what a task costs with Ansible's own strategy (prenixos.mitogen=0)
            figures.update(task_figures(state, first_boot_env(state, mitogen=False), "_plain"))
        return figures
    finally:
        qemu.stop(workdir)


def floor_figures(machine, iso):
    blank = dict(machine, kernel_args="prenixos.storage=skip")
    workdir, state, _ready = boot("floor", blank, iso)
    try:
        guest(state, "cat > /tmp/check.yml <<'EOF'\n%sEOF" % CHECK_PLAYBOOK)
        guest(state, "%s %s/ansible-playbook /tmp/check.yml -i localhost, -c local -e ansible_python_interpreter=%s"
                     "/python > /tmp/check.log" % (ANSIBLE_ENV, VENV, VENV))
        commands = json.loads(guest(state, "cat /tmp/build-commands.json"))
        lines = ["set -eu"]
        for argv in commands:
            if argv[0].endswith("mount") and len(argv) > 1:
                lines.append("mkdir -p %s" % shlex.quote(argv[-1]))
            lines.append(shlex.join(argv))
            if os.path.basename(argv[0]) in MAKES_DEVICES:
                lines.append("udevadm settle -t 30")
        guest(state, "cat > /tmp/floor.sh <<'EOF'\n%s\nEOF" % "\n".join(lines))
        return {"commands": len(commands), "script_s": timed(state, "bash /tmp/floor.sh")}
    finally:
        qemu.stop(workdir)


def image_figures(machine, iso):
    """Every figure of one image: two boots of the demo machine."""
    figures = {"iso": os.path.relpath(iso, ROOT), "iso_mib": round(os.path.getsize(iso) / 2 ** 20, 1)}
    figures["first_boot"] = first_boot_figures(machine, iso)
    figures["storage_floor"] = floor_figures(machine, iso)
    apply_s = figures["first_boot"]["phases_s"].get("storage_apply")
    floor_s = figures["storage_floor"]["script_s"]
    figures["storage_ratio"] = round(apply_s / floor_s, 2) if apply_s and floor_s else None
    return figures


def flat(figures):
    """The compared figures of one image, by name."""
    values = dict(figures["first_boot"], storage_ratio=figures["storage_ratio"], iso_mib=figures["iso_mib"])
    return {name: values.get(name) for name in COMPARED}


def build_baseline(revision):
    """Build ``revision``'s image under build/baseline/ with this build's key; returns the ISO's path."""
    source = os.path.join(BASELINE_DIR, "src")
    subprocess.run(["rm", "-rf", source], check=True)
    os.makedirs(source)
    archive = subprocess.run(["git", "-C", ROOT, "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    # One OS-layer cache for both builds (its entries are named by their inputs' hash).
    cache = os.path.join(BASELINE_DIR, "cache")
    if not os.path.lexists(cache):
        os.makedirs(os.path.join(ROOT, "build", "cache"), exist_ok=True)
        os.symlink(os.path.join("..", "cache"), cache)
    environment = dict(os.environ, BUILD_DIR=BASELINE_DIR, VENV=os.path.join(ROOT, ".venv"),
                       SSH_KEY=KEY + ".pub", PRENIXOS_COLLECTION_DIR=source)
    subprocess.run(["bash", os.path.join(source, "iso", "build.sh")], env=environment, check=True)
    return os.path.join(BASELINE_DIR, "pre-nixos.iso")


def rows_of(figures):
    boot_figures = figures["first_boot"]
    rows = [("QEMU start -> SSH ready (%s)" % boot_figures["accel"], "%s s" % boot_figures["ssh_ready_s"]),
            ("QEMU start -> storage starts (SSH ready before: %s)" % ("yes" if boot_figures["ssh_before_storage"]
                                                                      else "no"),
             "%s s" % boot_figures["storage_started_s"]),
            ("pre-nixos.service, start to end (%s)" % boot_figures["first_boot_state"],
             "%s s" % boot_figures["first_boot_s"])]
    rows += [("  phase %s" % name, "%s s" % seconds) for name, seconds in sorted(boot_figures["phases_s"].items())]
    apply_timing = boot_figures.get("storage_apply_timing")
    if apply_timing:
        rows.append(("    storage_apply's %d commands: changing / reading the state" % apply_timing["commands"],
                     "%s s / %s s" % (apply_timing["changing_seconds"], apply_timing["reading_seconds"])))
    mitogen = "yes" if boot_figures.get("mitogen") else "no"
    rows += [("first-boot playbook again, right after first boot (the arrays syncing)",
              "%s s" % boot_figures.get("rerun_syncing_s")),
             ("  then waited for the arrays to be in sync", "%s s" % boot_figures.get("sync_wait_s")),
             ("first-boot playbook again, arrays in sync (%s)" % boot_figures["rerun_recap"],
              "%s s" % boot_figures["rerun_s"]),
             ("one trivial module task in the guest (median; Mitogen: %s)" % mitogen,
              "%s s" % boot_figures.get("module_task_s")),
             ("an empty playbook in the guest (median)", "%s s" % boot_figures.get("empty_playbook_s")),
             ("  the same two with Ansible's own strategy", "%s s / %s s" % (
                 boot_figures.get("module_task_plain_s", boot_figures.get("module_task_s")),
                 boot_figures.get("empty_playbook_plain_s", boot_figures.get("empty_playbook_s")))),
             ("storage build as a plain script (%d commands)" % figures["storage_floor"]["commands"],
              "%s s" % figures["storage_floor"]["script_s"]),
             ("storage_apply phase / plain script", "%s x" % figures["storage_ratio"]),
             ("image size", "%s MiB" % figures["iso_mib"])]
    return rows


def print_table(headers, rows):
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    for index, row in enumerate([headers] + rows):
        print("| %s |" % " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("|%s|" % "|".join("-" * (width + 2) for width in widths))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--baseline", metavar="REV", help="also build and measure this git revision's image")
    args = parser.parse_args(argv)
    machine = qemu.load_machine("default")
    started = time.monotonic()
    figures = {"machine": "tests/vm/machines/default.json",
               "planner_ms": {str(n): round(bench_planner.best_time(bench_planner.machine(n), r) * 1000, 2)
                              for n, r in ((10, 50), (100, 20), (1000, 5))}}
    baseline_iso = build_baseline(args.baseline) if args.baseline else None
    figures.update(image_figures(machine, ISO))
    # storage_overhead_ratio: the key earlier versions wrote, kept for whoever reads bench.json.
    figures.update(storage_overhead_ratio=figures["storage_ratio"],
                   module_task_s=figures["first_boot"]["module_task_s"],
                   empty_playbook_s=figures["first_boot"]["empty_playbook_s"])
    if baseline_iso:
        figures["baseline"] = dict(image_figures(machine, baseline_iso), revision=args.baseline)
        mine, theirs = flat(figures), flat(figures["baseline"])
        figures["ratios"] = {name: round(mine[name] / theirs[name], 2) if mine[name] and theirs[name] else None
                             for name in COMPARED}
    figures["bench_wall_s"] = round(time.monotonic() - started)
    os.makedirs(os.path.dirname(WORK), exist_ok=True)
    with open(os.path.join(ROOT, "build", "bench.json"), "w") as handle:
        json.dump(figures, handle, indent=2, sort_keys=True)

    rows = rows_of(figures)
    if baseline_iso:
        base_rows = dict(rows_of(figures["baseline"]))
        print_table(("what", "this image", "baseline %s" % args.baseline),
                    [(label, value, base_rows.get(label, "-")) for label, value in rows])
        print_table(("figure", "this / baseline"), sorted(figures["ratios"].items()))
    else:
        print_table(("what", "figure"), rows)
    print_table(("planner", "ms"), [("%s disks" % n, ms) for n, ms in figures["planner_ms"].items()])
    print("(written to build/bench.json)")


if __name__ == "__main__":
    main()
