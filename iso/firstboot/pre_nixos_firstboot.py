# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pre-nixos.service runs on the boot image (/usr/local/lib/pre-nixos/pre_nixos_firstboot.py).

Reads the operator's switches from the kernel command line, opens the status file
(/run/pre-nixos/status.json), runs the collection's first-boot playbook locally, logs the
whole run to stdout (the journal and the console) and to /var/log/pre-nixos/, and closes the
status file whatever happens.

Kernel command-line switches (anything else starting with ``prenixos.`` is reported and ignored):

  prenixos.firstboot=0            do nothing (every phase recorded as skipped)
  prenixos.storage=plan|apply|skip  what first boot does with the disks
  prenixos.wipe=1                 allow tearing down what the planned disks hold
  prenixos.redundant=1            build main as RAID1/5/6 instead of RAID0
  prenixos.backups=1              give large/data one inode per 2 KiB (hard-link backups)
  prenixos.install=1              install NixOS onto the built disks (images with Nix only)
  prenixos.reboot=1               after installing NixOS, reboot into it
  prenixos.mitogen=0              run the playbook with Ansible's own strategy instead of Mitogen's
  prenixos.exclude=SEL[,SEL...]   never plan the disks these selectors match (prenixos_storage_exclude)
  prenixos.include=SEL[,SEL...]   plan only the disks these selectors match (prenixos_storage_include)
  prenixos.slash=SIZE             the size of / (prenixos_storage_slash_size)
  prenixos.home=SIZE              the largest size of /home (prenixos_storage_home_size)
  prenixos.swap=SIZE              the size of the swap volume, 0 for none (prenixos_storage_swap_size)
  prenixos.ip=ADDR/PREFIX[,...]   a static address for lan instead of DHCP, IPv4 and/or IPv6 (prenixos_lan_address)
  prenixos.gw=ADDR[,ADDR]         the default gateway(s) of the static address(es) (prenixos_lan_gateway)
  prenixos.dns=ADDR[,ADDR...]     DNS servers for lan (prenixos_lan_dns)
  prenixos.vlan=ID                put lan on this tagged VLAN (1-4094) over the NIC with the link (prenixos_lan_vlan)

A selector (SEL) is a kernel name (sda), a serial, a WWN (0x5002538e40a1b2c3, naa.5002538E40A1B2C3), a
/dev/disk/by-id/ link or a model glob (Samsung*, blanks in the model as _), or one of them after name:, serial:,
wwn:, by-id: or model:. A SIZE is bytes or a number with a binary unit: 20G, 512M, 1.5T. A bad value is
reported and ignored like any other; a selector that matches no disk stops the plan, listing the disks.
The network switches are passed on as given: the lan phase checks them together (a gateway must lie in the
address's network) and, where one is wrong, configures nothing and says why on the console and in /etc/issue.

Python 3 standard library and the collection's pure module_utils only.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

COLLECTIONS = "/usr/share/pre-nixos/collections"
VENV = "/opt/pre-nixos/venv"
PLAYBOOK = "prenixos.baseline.first_boot"
LOG_DIR = "/var/log/pre-nixos"
STATUS_PATH = "/run/pre-nixos/status.json"
# Mitogen's strategies, installed in the image's venv: one Python runs every module task of the playbook
# instead of a new process each (seconds per task under emulation). prenixos.mitogen=0 turns it off.
MITOGEN_STRATEGIES = os.path.join(VENV, "lib", "python3.11", "site-packages", "ansible_mitogen", "plugins", "strategy")
# Where the boot medium is mounted read-only, so disk_facts knows never to touch it.
MEDIUM_MOUNT = "/run/live/medium"

# switch -> accepted values; the first value of a boolean switch is "off".
SWITCHES = {
    "prenixos.firstboot": ("0", "1"),
    "prenixos.storage": ("plan", "apply", "skip"),
    "prenixos.wipe": ("0", "1"),
    "prenixos.redundant": ("0", "1"),
    "prenixos.backups": ("0", "1"),
    "prenixos.install": ("0", "1"),
    "prenixos.reboot": ("0", "1"),
    "prenixos.mitogen": ("0", "1"),
}
# Switches that take a value of the operator's: what they take, its kind (checked as the planner checks it),
# and the role variable they set.
SIZE = "a size: bytes or a number with a binary unit (20G, 512M, 1.5T)"
VALUE_SWITCHES = {
    "prenixos.exclude": ("disk selectors separated by commas", "selectors", "prenixos_storage_exclude"),
    "prenixos.include": ("disk selectors separated by commas", "selectors", "prenixos_storage_include"),
    "prenixos.slash": (SIZE, "size", "prenixos_storage_slash_size"),
    "prenixos.home": (SIZE, "size", "prenixos_storage_home_size"),
    "prenixos.swap": (SIZE, "size", "prenixos_storage_swap_size"),
    "prenixos.ip": ("addresses with their prefix, separated by commas", "list", "prenixos_lan_address"),
    "prenixos.gw": ("gateway addresses separated by commas", "list", "prenixos_lan_gateway"),
    "prenixos.dns": ("DNS server addresses separated by commas", "list", "prenixos_lan_dns"),
    "prenixos.vlan": ("a VLAN ID", "text", "prenixos_lan_vlan"),
}
# Boolean switches and the role variables they set.
BOOLEAN_SWITCHES = (
    ("prenixos.wipe", "prenixos_storage_wipe"),
    ("prenixos.redundant", "prenixos_storage_redundant_main"),
    ("prenixos.backups", "prenixos_storage_backups"),
    ("prenixos.install", "prenixos_nixos_install"),
    ("prenixos.reboot", "prenixos_nixos_reboot"),
)
# Set by the image's boot menu, not by operators.
INTERNAL = ("prenixos.medium",)

sys.path.insert(0, COLLECTIONS)
from ansible_collections.prenixos.baseline.plugins.module_utils import status as statusfile  # noqa: E402
from ansible_collections.prenixos.baseline.plugins.module_utils.disk_selectors import parse_selector  # noqa: E402
from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import PlanError, parse_size  # noqa: E402


def say(message):
    """A progress line: stdout goes to the journal and to the console."""
    print("pre-nixos: %s" % message, flush=True)


def parse_cmdline(text):
    """The prenixos.* switches of a kernel command line, and warnings about the rest.

    Returns ``(switches, warnings)``: ``switches`` maps each valid switch to its value (the
    last occurrence wins, as for the kernel's own parameters).
    """
    switches, warnings = {}, []
    known = ", ".join(sorted(set(SWITCHES) | set(VALUE_SWITCHES)))
    for word in text.split():
        key, sep, value = word.partition("=")
        if not key.startswith("prenixos."):
            continue
        if key in INTERNAL:
            switches[key] = value
            continue
        if key in VALUE_SWITCHES:
            what, kind, _variable = VALUE_SWITCHES[key]
            problem = value_problem(kind, value) if sep else ""
            if problem is not None:
                warnings.append("%r ignored: %s takes %s%s" % (word, key, what, problem and " (%s)" % problem))
                continue
        elif key not in SWITCHES:
            warnings.append("unknown switch %r ignored (known: %s)" % (word, known))
            continue
        elif not sep or value not in SWITCHES[key]:
            warnings.append("%r ignored: %s takes one of %s" % (word, key, "|".join(SWITCHES[key])))
            continue
        switches[key] = value
    return switches, warnings


def value_problem(kind, value):
    """None when ``value`` is a size or a list of disk selectors as the planner reads them, else what is wrong
    ("" when the switch's description says it). Network values pass here: the lan phase checks them together."""
    if kind in ("list", "text"):
        return None if value.strip() else ""
    try:
        if kind == "size":
            parse_size("size", value)
        else:
            for selector in value.split(","):
                parse_selector(selector, "selector")
    except PlanError as error:
        return "" if kind == "size" else str(error).partition(": ")[2]
    return None


def extra_vars(switches):
    """The playbook variables the switches set; unset switches leave the playbook's defaults."""
    result = {}
    if "prenixos.storage" in switches:
        result["prenixos_firstboot_storage_mode"] = switches["prenixos.storage"]
    for switch, variable in BOOLEAN_SWITCHES:
        if switch in switches:
            result[variable] = switches[switch] == "1"
    for switch, (_what, kind, variable) in VALUE_SWITCHES.items():
        if switch in switches:
            value = switches[switch]
            if kind in ("selectors", "list"):
                value = [part.strip() for part in value.split(",") if part.strip()]
            result[variable] = value
    return result


def network_vars(switches):
    """The lan role's variables of the network switches: every later run of the first-boot playbook
    (``pre-nixos apply``) passes them too, so that it keeps the network the machine is reached on."""
    return {name: value for name, value in extra_vars(switches).items() if name.startswith("prenixos_lan_")}


def mount_medium(uuid):
    """Mount the boot medium read-only at MEDIUM_MOUNT; None when it is mounted (so disk_facts protects it),
    else why it could not be."""
    device = "/dev/disk/by-uuid/%s" % uuid
    if os.path.ismount(MEDIUM_MOUNT):
        return None
    if not os.path.exists(device):
        return "the boot medium %s was not found (removed?)" % device
    os.makedirs(MEDIUM_MOUNT, exist_ok=True)
    result = subprocess.run(["mount", "-o", "ro", device, MEDIUM_MOUNT], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return "the boot medium %s could not be mounted: %s" % (device, result.stderr.strip() or "mount failed")
    say("boot medium %s mounted read-only at %s" % (os.path.realpath(device), MEDIUM_MOUNT))
    return None


def protect_medium(switches, variables, mount=mount_medium):
    """The playbook variables once the boot medium is protected, and what to tell the operator (or None).

    A wipe needs to know which disk the image came from, to keep it out: when the medium cannot be
    found or mounted (or the boot menu did not name it), ``prenixos.wipe=1`` is refused; planning and
    building on blank disks still run. (An image that came over the network has no medium to protect;
    the network boot sets that, and then this check does not apply.)
    """
    uuid = switches.get("prenixos.medium")
    problem = mount(uuid) if uuid else "the kernel command line does not name the boot medium (prenixos.medium)"
    if problem is None:
        return variables, None
    if not variables.get("prenixos_storage_wipe"):
        return variables, "%s: nothing to protect it by; storage work touches only blank disks" % problem
    return (dict(variables, prenixos_storage_wipe=False),
            "prenixos.wipe=1 refused: %s, so it cannot be kept out of a wipe; planning and building on blank "
            "disks still run" % problem)


def close_status(rc, log_path):
    """Finish the status file after the playbook: nothing is left pending or running."""
    status = statusfile.load(STATUS_PATH)
    for name, entry in sorted(status["phases"].items()):
        if entry.get("state") == "pending":
            status = statusfile.set_phase(status, name, "skipped", "not part of this version of first boot")
        elif entry.get("state") == "running":
            reason = "ansible-playbook stopped (exit code %s) while this phase ran; see %s" % (rc, log_path)
            status = statusfile.set_phase(status, name, "failed", reason)
    status = statusfile.finish(status)
    if rc != 0 and status["state"] != "failed":
        status["state"] = "failed"
        status["reason"] = "ansible-playbook exited with code %s; see %s" % (rc, log_path)
    statusfile.save(status, STATUS_PATH)
    return status


def skip_everything(status, reason):
    """Record every phase, and the run, as skipped."""
    for name in list(status["phases"]):
        status = statusfile.set_phase(status, name, "skipped", reason)
    status = statusfile.finish(status)
    status["state"] = "skipped"
    statusfile.save(status, STATUS_PATH)
    return status


def ansible_environment(mitogen=True, result_format="yaml"):
    """The environment ansible-playbook runs in on the image (also what ``make bench`` measures).

    ``result_format`` json makes every task result one JSON document (what ``pre-nixos`` reads a refusal from).
    """
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        # One process per module task instead of five (temp dir, copy, chmod, run, clean up): seconds under emulation.
        ANSIBLE_PIPELINING="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_CALLBACK_RESULT_FORMAT=result_format,
        HOME=os.environ.get("HOME", "/root"),
        LANG="C.UTF-8",
        PYTHONUNBUFFERED="1",
    )
    if mitogen and os.path.isdir(MITOGEN_STRATEGIES):
        env.update(ANSIBLE_STRATEGY_PLUGINS=MITOGEN_STRATEGIES, ANSIBLE_STRATEGY="mitogen_linear")
    return env


def playbook_command(variables, playbook=PLAYBOOK, options=()):
    """The ansible-playbook command line: this machine, the image's venv, ``variables`` as one JSON ``-e``."""
    command = [
        os.path.join(VENV, "bin", "ansible-playbook"), playbook,
        "-i", "localhost,", "-c", "local",
        "-e", "ansible_python_interpreter=%s" % os.path.join(VENV, "bin", "python"),
    ]
    command += list(options)
    if variables:
        command += ["-e", json.dumps(variables, sort_keys=True)]
    return command


def run_playbook(variables, log, mitogen=True, playbook=PLAYBOOK, options=(), echo=True, result_format="yaml"):
    """ansible-playbook on ``playbook`` (the first-boot one unless told), each output line to ``log`` and, with
    ``echo``, to stdout; returns its exit code."""
    env = ansible_environment(mitogen, result_format)
    command = playbook_command(variables, playbook, options)
    say("running: %s" % " ".join(command))
    log.write("$ %s\n" % " ".join(command))
    log.flush()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                          errors="replace", cwd="/") as process:
        for line in process.stdout:
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
            log.write(line)
            log.flush()
    return process.returncode


def open_log(kind):
    """A new log file ``LOG_DIR/KIND-<UTC time>.log``, with ``KIND.log`` pointing at it; returns (path, file)."""
    os.makedirs(LOG_DIR, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_path = os.path.join(LOG_DIR, "%s-%s.log" % (kind, stamp))
    latest = os.path.join(LOG_DIR, "%s.log" % kind)
    log = open(log_path, "a")  # two runs within a second share the file rather than lose the first
    if os.path.lexists(latest):
        os.unlink(latest)
    os.symlink(os.path.basename(log_path), latest)
    return log_path, log


def main():
    started = time.monotonic()
    with open("/proc/cmdline") as handle:
        switches, warnings = parse_cmdline(handle.read())
    variables = extra_vars(switches)

    log_path, log = open_log("firstboot")
    status = statusfile.new_status()
    status["log"] = log_path
    status["switches"] = {k: v for k, v in switches.items() if k not in INTERNAL}
    statusfile.save(status, STATUS_PATH)

    rc = 1
    with log:
        def note(message):
            say(message)
            log.write("pre-nixos: %s\n" % message)
            log.flush()

        try:
            note("first boot starts; log %s, status %s" % (log_path, STATUS_PATH))
            for warning in warnings:
                note("WARNING: kernel command line: %s" % warning)
            note("waiting for udev to finish discovering devices")
            subprocess.run(["udevadm", "settle", "--timeout=120"], check=False)
            # Even when first boot does nothing: a playbook run over SSH later must know the medium too.
            variables, medium_note = protect_medium(switches, variables)
            if medium_note:
                note(medium_note)
            if switches.get("prenixos.firstboot") == "0":
                note("prenixos.firstboot=0 on the kernel command line: doing nothing else")
                status = skip_everything(status, "prenixos.firstboot=0 on the kernel command line")
                return 0
            given = ", ".join("%s=%s" % kv for kv in sorted(status["switches"].items()))
            note("switches: %s" % (given or "none (playbook defaults)"))
            rc = run_playbook(variables, log, mitogen=switches.get("prenixos.mitogen") != "0")
        except Exception as error:  # the status file must still be closed
            note("ERROR: %s: %s" % (type(error).__name__, error))
            rc = 1
        finally:
            if switches.get("prenixos.firstboot") != "0":
                status = close_status(rc, log_path)
                elapsed = int(time.monotonic() - started)
                note("first boot finished in %d s: %s (details: %s, log: %s)"
                     % (elapsed, status["state"], STATUS_PATH, log_path))
    return 0 if status["state"] in ("done", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
