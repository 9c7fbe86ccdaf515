from __future__ import annotations

import base64
import fnmatch
import os
import stat
import struct

import pytest
from module_harness import run_module

from ansible_collections.prenixos.baseline.plugins.module_utils import sshd
from ansible_collections.prenixos.baseline.plugins.modules import authorized_keys, sshd_hardening


def make_key(key_type="ssh-ed25519", comment="operator@example"):
    blob = struct.pack(">I", len(key_type)) + key_type.encode() + struct.pack(">I", 32) + b"k" * 32
    return "%s %s %s" % (key_type, base64.b64encode(blob).decode(), comment)


HARDENED = {
    "PermitRootLogin": "prohibit-password",
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "AuthenticationMethods": "publickey",
}


@pytest.fixture
def fake_sshd(tmp_path, monkeypatch):
    """An ``sshd`` on PATH whose -T output is built from the drop-ins, like sshd's first-value-wins rule.

    A file ``override`` plays a configuration read before ours; ``reject`` makes ``sshd -t`` fail;
    ``match-ADDR`` plays a ``Match`` block that applies to connections from ADDR (``-C ...,addr=ADDR``).
    The host's own sshd is never run, and the privilege separation directory is ``run-sshd`` here.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "sshd.log"
    script = bindir / "sshd"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$@" >> "%s"\n'
        'case "$1" in\n'
        '  -t) [ -e "%s" ] && exit 1; exit 0 ;;\n'
        "  -T) addr=$(echo \"$@\" | tr ', ' '\\n\\n' | sed -n 's/^addr=//p'); cat %s/match-$addr 2>/dev/null; "
        "cat %s/override 2>/dev/null; for f in %s/sshd_config.d/*.conf; do [ -e \"$f\" ] && "
        "grep -v '^#' \"$f\" | tr 'A-Z' 'a-z'; done; cat %s/defaults ;;\n"
        "esac\n" % (log, tmp_path / "reject", tmp_path, tmp_path, tmp_path, tmp_path)
    )
    script.chmod(0o755)
    (tmp_path / "sshd_config.d").mkdir()
    (tmp_path / "defaults").write_text("permitrootlogin without-password\npasswordauthentication yes\n")
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setattr(sshd_hardening, "PRIVSEP_DIR", str(tmp_path / "run-sshd"))
    return tmp_path


def hardening_args(root):
    return {
        "settings": HARDENED,
        "path": str(root / "sshd_config.d" / "00-pre-nixos.conf"),
        "config": str(root / "sshd_config"),
    }


def test_a_wellformed_key_is_accepted_and_normalised():
    key = make_key()
    assert sshd.check_public_key("  " + key + "\n") == key


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "empty key"),
        ("ssh-ed25519", "no known key type"),
        ("ssh-dss AAAAB3NzaC1kc3M= old", "no known key type"),
        ("ssh-ed25519 not*base64 me", "not base64"),
        (make_key("ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1), "its data is ssh-rsa"),
    ],
)
def test_malformed_keys_are_refused_with_the_reason(line, problem):
    with pytest.raises(ValueError, match=problem):
        sshd.check_public_key(line)


def test_effective_config_comparison_accepts_sshd_spellings_and_names_differences():
    effective = sshd.parse_effective_config("permitrootlogin without-password\npasswordauthentication yes\n")
    assert sshd.mismatches({"PermitRootLogin": "prohibit-password", "PasswordAuthentication": "no"}, effective) == {
        "PasswordAuthentication": ("no", "yes")
    }


def test_authorized_keys_are_written_private_and_only_once(tmp_path, capsys):
    path = tmp_path / "root" / ".ssh" / "authorized_keys"
    args = {"keys": [make_key()], "path": str(path)}
    first = run_module(authorized_keys.main, args, capsys)
    second = run_module(authorized_keys.main, args, capsys)
    assert (first["changed"], second["changed"]) == (True, False)
    assert path.read_text() == sshd.MANAGED_HEADER + make_key() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_authorized_keys_check_mode_writes_nothing(tmp_path, capsys):
    path = tmp_path / "authorized_keys"
    result = run_module(authorized_keys.main, {"keys": [make_key()], "path": str(path)}, capsys, check_mode=True)
    assert result["changed"] is True
    assert not path.exists()


@pytest.mark.parametrize(
    ("keys", "message"),
    [([], "no SSH public key given"), ([make_key(), "ssh-ed25519 garbage!"], "key 2: key data is not base64")],
)
def test_bad_key_lists_leave_the_existing_file_alone(tmp_path, capsys, keys, message):
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 AAAA old\n")
    result = run_module(authorized_keys.main, {"keys": keys, "path": str(path)}, capsys)
    assert result["failed"] is True
    assert message in result["msg"]
    assert path.read_text() == "ssh-ed25519 AAAA old\n"


def test_sshd_dropin_is_written_checked_and_idempotent(fake_sshd, capsys):
    args = hardening_args(fake_sshd)
    first = run_module(sshd_hardening.main, args, capsys)
    second = run_module(sshd_hardening.main, args, capsys)
    assert first["changed"] is True and second["changed"] is False
    assert first["effective"] == {
        "permitrootlogin": "prohibit-password",
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "authenticationmethods": "publickey",
        "authorizedkeysfile": ".ssh/authorized_keys",
        "authorizedkeyscommand": "none",
    }
    assert [cmd[1] for cmd in second["commands"]] == ["-t", "-T"]
    assert (fake_sshd / "run-sshd").is_dir()
    assert (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").read_text() == sshd.render_dropin(
        dict(HARDENED, **PINNED)
    )


def test_sshd_check_mode_touches_nothing(fake_sshd, capsys):
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys, check_mode=True, diff=True)
    assert result["changed"] is True
    assert "PasswordAuthentication no" in result["diff"]["after"]
    assert not (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").exists()
    assert not (fake_sshd / "run-sshd").exists()
    assert not (fake_sshd / "sshd.log").exists()


def test_a_config_sshd_rejects_is_rolled_back(fake_sshd, capsys):
    dropin = fake_sshd / "sshd_config.d" / "00-pre-nixos.conf"
    dropin.write_text("# the previous, working drop-in\n")
    (fake_sshd / "reject").touch()
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("sshd configuration rejected, previous configuration kept")
    assert result["rc"] == 1
    assert dropin.read_text() == "# the previous, working drop-in\n"


def test_a_setting_overridden_elsewhere_is_reported_and_rolled_back(fake_sshd, capsys):
    (fake_sshd / "override").write_text("passwordauthentication yes\n")
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    assert result["failed"] is True
    assert "PasswordAuthentication wanted no, effective yes" in result["msg"]
    assert not (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").exists()


# ---------------------------------------------------------------- where sshd reads keys from, Match blocks

PINNED = {"AuthorizedKeysCommand": "none", "AuthorizedKeysFile": ".ssh/authorized_keys"}
DEFAULT_CONTEXT = "user=root,host=localhost,addr=127.0.0.1"


def contexts_asked(result):
    return [cmd[cmd.index("-C") + 1] for cmd in result["commands"] if cmd[1] == "-T"]


def test_the_dropin_pins_root_keys_to_authorized_keys_and_no_command(fake_sshd, capsys):
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    dropin = (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").read_text()
    assert "AuthorizedKeysCommand none\n" in dropin and "AuthorizedKeysFile .ssh/authorized_keys\n" in dropin
    assert result["effective"]["authorizedkeysfile"] == ".ssh/authorized_keys"
    assert result["effective"]["authorizedkeyscommand"] == "none"


def test_a_keys_file_the_caller_names_replaces_the_pinned_one(fake_sshd, capsys):
    args = dict(hardening_args(fake_sshd), settings=dict(HARDENED, authorizedkeysfile="/etc/ssh/keys/%u"))
    result = run_module(sshd_hardening.main, args, capsys)
    dropin = (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").read_text()
    assert "authorizedkeysfile /etc/ssh/keys/%u\n" in dropin and "AuthorizedKeysFile" not in dropin
    assert "AuthorizedKeysCommand none\n" in dropin
    assert result["effective"]["authorizedkeysfile"] == "/etc/ssh/keys/%u"


def test_keys_in_authorized_keys2_or_from_a_command_are_caught_and_rolled_back(fake_sshd, capsys):
    (fake_sshd / "override").write_text(
        "authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\nauthorizedkeyscommand /usr/bin/fetch-keys\n"
    )
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    assert result["failed"] is True
    assert "AuthorizedKeysCommand wanted none, effective /usr/bin/fetch-keys" in result["msg"]
    assert "AuthorizedKeysFile wanted .ssh/authorized_keys, effective .ssh/authorized_keys .ssh/authorized_keys2" in (
        result["msg"]
    )
    assert not (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").exists()


def test_a_match_address_block_that_turns_passwords_back_on_is_caught(fake_sshd, capsys):
    (fake_sshd / "sshd_config").write_text(
        "Include sshd_config.d/*.conf\nUsePAM yes\n\nMatch Address 192.168.0.0/16\n    PasswordAuthentication yes\n"
    )
    # What sshd -T says for a connection from 192.168.0.1: the Match block applies.
    (fake_sshd / "match-192.168.0.1").write_text("passwordauthentication yes\n")
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    assert result["failed"] is True, result
    assert DEFAULT_CONTEXT in contexts_asked(result)
    assert "user=root,host=localhost,addr=192.168.0.1,laddr=127.0.0.1,lport=22" in contexts_asked(result)
    assert (
        "PasswordAuthentication wanted no, effective yes for connections that match 'Match Address 192.168.0.0/16'"
        " (%s:4; asked sshd -T -C user=root,host=localhost,addr=192.168.0.1,laddr=127.0.0.1,lport=22)"
        % (fake_sshd / "sshd_config")
    ) in result["msg"]
    assert not (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").exists()


def test_a_match_block_sshd_cannot_be_asked_about_is_refused_from_its_lines(fake_sshd, capsys):
    (fake_sshd / "sshd_config").write_text("Include sshd_config.d/*.conf\n")
    (fake_sshd / "sshd_config.d" / "50-local.conf").write_text(
        "# local additions\nMatch Group wheel\n  PasswordAuthentication yes\n"
        "Match User deploy\n  ChallengeResponseAuthentication=yes\n  MaxAuthTries 5\n"
    )
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    assert result["failed"] is True, result
    local = fake_sshd / "sshd_config.d" / "50-local.conf"
    assert "'Match Group wheel' (%s:2) sets PasswordAuthentication yes, wanted no" % local in result["msg"]
    assert (
        "'Match User deploy' (%s:4) sets ChallengeResponseAuthentication (KbdInteractiveAuthentication) yes, wanted no"
        % local
    ) in result["msg"]
    assert "MaxAuthTries" not in result["msg"]
    assert not (fake_sshd / "sshd_config.d" / "00-pre-nixos.conf").exists()


def test_match_blocks_that_keep_the_settings_pass_and_each_is_asked_about(fake_sshd, capsys):
    (fake_sshd / "sshd_config").write_text(
        "Include sshd_config.d/*.conf\n"
        "Match User backup Address 10.1.0.0/16,!10.1.2.3\n  ForceCommand internal-sftp\n"
        "Match LocalPort 2222 Host *.example.org\n  PasswordAuthentication no\n"
        'Match LocalAddress "192.0.2.*"\n  Banner none\n'
    )
    result = run_module(sshd_hardening.main, hardening_args(fake_sshd), capsys)
    assert result["changed"] is True and "failed" not in result, result
    assert contexts_asked(result) == [
        DEFAULT_CONTEXT,
        "user=backup,host=localhost,addr=10.1.0.1,laddr=127.0.0.1,lport=22",
        "user=root,host=x.example.org,addr=127.0.0.1,laddr=127.0.0.1,lport=2222",
        "user=root,host=localhost,addr=127.0.0.1,laddr=192.0.2.1,lport=22",
    ]


def test_match_blocks_are_found_through_includes_in_order():
    files = {
        "/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nmatch address 10.0.0.1\n  Include extra.conf\n",
        "/etc/ssh/sshd_config.d/20-b.conf": "Match User b\n PermitRootLogin yes\n",
        "/etc/ssh/sshd_config.d/10-a.conf": "PermitRootLogin no\n",
        "/etc/ssh/extra.conf": "PasswordAuthentication yes\n",
    }

    def expand(pattern):
        return sorted(path for path in files if fnmatch.fnmatch(path, pattern))

    blocks = sshd.match_blocks("/etc/ssh/sshd_config", files.get, expand)
    assert blocks == [
        {"match": "Match User b", "where": "/etc/ssh/sshd_config.d/20-b.conf:1", "criteria": [("user", "b")],
         "settings": [("permitrootlogin", "yes", "PermitRootLogin")]},
        {"match": "match address 10.0.0.1", "where": "/etc/ssh/sshd_config:2", "criteria": [("address", "10.0.0.1")],
         "settings": [("passwordauthentication", "yes", "PasswordAuthentication")]},
    ]
