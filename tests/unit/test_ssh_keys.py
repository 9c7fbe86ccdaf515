"""Public key lines as sshd reads them from authorized_keys: options, key type, key data; one line each."""
from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import subprocess

import pytest
from module_harness import run_module

from ansible_collections.prenixos.baseline.plugins.module_utils import sshd
from ansible_collections.prenixos.baseline.plugins.modules import authorized_keys


def ssh_string(data):
    return struct.pack(">I", len(data)) + data


def make_blob(key_type="ssh-ed25519"):
    """Key data laid out as OpenSSH writes it for ``key_type`` (the numbers are not a real key)."""
    body = {
        "ssh-ed25519": [b"k" * 32],
        "ssh-rsa": [b"\x01\x00\x01", b"\x00" + b"n" * 256],
        "ecdsa-sha2-nistp256": [b"nistp256", b"\x04" + b"q" * 64],
        "sk-ssh-ed25519@openssh.com": [b"k" * 32, b"ssh:"],
    }[key_type]
    return base64.b64encode(ssh_string(key_type.encode()) + b"".join(ssh_string(part) for part in body)).decode()


ED25519 = "ssh-ed25519 %s operator@desk" % make_blob()


@pytest.mark.parametrize("key_type", ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com"])
def test_keys_of_every_kind_sshd_reads_are_accepted(key_type):
    line = "%s %s someone@somewhere" % (key_type, make_blob(key_type))
    assert sshd.check_public_key(line) == line


@pytest.mark.parametrize(
    "options",
    [
        'from="10.0.0.0/8",no-pty',
        'restrict,pty,command="echo a, b, \\"c\\"; uptime"',
        'no-agent-forwarding,no-port-forwarding,no-X11-forwarding,no-user-rc',
        'agent-forwarding,port-forwarding,X11-forwarding,user-rc',
        'NO-PTY,From="192.0.2.1,!192.0.2.2,*.example.org"',
        'environment="LANG=C.UTF-8",expiry-time="20301231",expiry-time="203012312359"',
        'permitopen="localhost:8080",permitopen="[::1]:*",permitlisten="8080",permitlisten="localhost:*"',
        'cert-authority,principals="ops,backup"',
        'tunnel="0",no-touch-required,verify-required',
    ],
)
def test_options_sshd_knows_are_accepted(options):
    line = "%s %s" % (options, ED25519)
    assert sshd.check_public_key(line) == line


def test_a_quoted_value_may_hold_spaces_before_the_key_type():
    line = 'command="/usr/bin/rsync --server -e.LsfxC . /backup" ' + ED25519
    assert sshd.check_public_key(line) == line


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (ED25519 + "\nssh-ed25519 " + make_blob() + " intruder", "spans several lines"),
        (ED25519 + "\rcommand", "spans several lines"),
        ("ssh-ed25519\n" + make_blob(), "spans several lines"),
        ("no-ptty " + ED25519, 'unknown option "no-ptty"'),
        ("no-pty,,no-user-rc " + ED25519, "empty option"),
        ('from=10.0.0.0/8 ' + ED25519, 'option "from" needs a quoted value'),
        ('from="10.0.0.0/8 ' + ED25519, "unterminated quote"),
        ('command="uptime"no-pty ' + ED25519, 'after option "command"'),
        ("no-pty=yes " + ED25519, 'option "no-pty" takes no value'),
        ('expiry-time="next year" ' + ED25519, 'expiry-time "next year" is not'),
        ('environment="LANG" ' + ED25519, 'environment "LANG" is not'),
        ('environment="MY-LANG=C" ' + ED25519, 'environment "MY-LANG=C" is not'),
        ('tunnel="tun0" ' + ED25519, 'tunnel "tun0" is not'),
        ('permitopen="localhost" ' + ED25519, 'permitopen "localhost" is not'),
        ('from="10.0.0.0/33" ' + ED25519, 'from "10.0.0.0/33" is not'),
        ("no-pty ssh-ed25519", "followed by key data"),
        ("no-pty ssh-ed448 %s" % make_blob(), "no known key type"),
        ("no-pty " + ED25519.replace("ssh-ed25519", "ssh-rsa"), "its data is ssh-ed25519"),
        ("ssh-ed25519 %s" % make_blob()[:-8], "key data"),
        ("ssh-ed25519 %s" % base64.b64encode(ssh_string(b"ssh-ed25519") + ssh_string(b"short")).decode(),
         "32 bytes"),
        ("ssh-ed25519 %s" % base64.b64encode(ssh_string(b"ssh-ed25519") + ssh_string(b"k" * 32) + b"x").decode(),
         "trailing"),
        ("ecdsa-sha2-nistp256 %s" % base64.b64encode(
            ssh_string(b"ecdsa-sha2-nistp256") + ssh_string(b"nistp384") + ssh_string(b"\x04" + b"q" * 96)).decode(),
         "curve nistp384"),
    ],
)
def test_lines_sshd_would_ignore_are_refused_with_the_reason(line, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        sshd.check_public_key(line)


def test_the_module_names_the_key_and_why_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 AAAA old\n")
    keys = [ED25519, "no-ptty " + ED25519, ED25519 + "\nssh-ed25519 " + make_blob() + " intruder"]
    result = run_module(authorized_keys.main, {"keys": keys, "path": str(path)}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("refusing malformed SSH public keys, nothing changed: ")
    problems = result["msg"].split(": ", 1)[1].split("; ")
    assert len(problems) == 2, result["msg"]
    assert problems[0].startswith('key 2: unknown option "no-ptty" (sshd knows ') and "operator@desk" in problems[0]
    assert problems[1].startswith("key 3: spans several lines") and "operator@desk" in problems[1]
    assert path.read_text() == "ssh-ed25519 AAAA old\n"


def test_keys_with_options_are_written_as_given(tmp_path, capsys):
    path = tmp_path / "authorized_keys"
    key = 'from="10.0.0.0/8",no-pty ' + ED25519
    result = run_module(authorized_keys.main, {"keys": [key], "path": str(path)}, capsys)
    assert (result["changed"], result["keys"]) == (True, [key])
    assert path.read_text() == sshd.MANAGED_HEADER + key + "\n"


# ---------------------------------------------------------------- the host key's fingerprint


def test_the_host_key_fingerprint_is_sha256_of_the_key_data_in_unpadded_base64():
    raw = base64.b64decode(make_blob())
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    assert sshd.host_key_fingerprint("ssh-ed25519 %s root@pre-nixos\n" % make_blob()) == "%s (ED25519)" % expected
    assert "=" not in expected[7:] and len(expected) == 7 + 43


@pytest.mark.parametrize("text", [None, "", "ssh-ed25519\n", "ssh-ed25519 not*base64 x\n", "garbage\n"])
def test_no_fingerprint_for_a_missing_or_unreadable_host_key(text):
    assert sshd.host_key_fingerprint(text) is None


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa"])
def test_the_fingerprint_is_what_ssh_keygen_prints(tmp_path, key_type):
    key = tmp_path / "ssh_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "root@pre-nixos", "-f", str(key)], check=True)
    printed = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], capture_output=True, text=True, check=True)
    bits, fingerprint, _comment, label = printed.stdout.split()
    assert fingerprint.startswith("SHA256:")
    assert sshd.host_key_fingerprint((tmp_path / "ssh_host_key.pub").read_text()) == "%s %s" % (fingerprint, label)
