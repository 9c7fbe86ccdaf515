# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for SSH hardening: public key checks, the sshd drop-in, the effective config."""
from __future__ import annotations

import base64
import binascii
import struct

KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)

# sshd -T prints some values under older spellings.
EQUIVALENT_VALUES = {("permitrootlogin", "without-password"): "prohibit-password"}

MANAGED_HEADER = "# Managed by prenixos.baseline (ssh_hardening); local changes are replaced.\n"


def check_public_key(line):
    """Return the normalised key line, or raise ValueError saying what is wrong with it."""
    text = (line or "").strip()
    fields = text.split()
    if not fields:
        raise ValueError("empty key")
    start = next((i for i, field in enumerate(fields) if field in KEY_TYPES), None)
    if start is None or start + 1 >= len(fields):
        raise ValueError("no known key type (%s) followed by key data in %r" % (", ".join(KEY_TYPES), shorten(text)))
    key_type, blob = fields[start], fields[start + 1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key data is not base64 in %r" % shorten(text)) from None
    if len(raw) < 4:
        raise ValueError("key data too short in %r" % shorten(text))
    (length,) = struct.unpack(">I", raw[:4])
    embedded_type = raw[4 : 4 + length].decode("ascii", "replace")
    if embedded_type != key_type:
        raise ValueError("key says %s but its data is %s in %r" % (key_type, embedded_type, shorten(text)))
    return text


def shorten(text, limit=60):
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_authorized_keys(keys):
    return MANAGED_HEADER + "".join(key + "\n" for key in keys)


def render_dropin(settings):
    """The sshd drop-in: one ``Keyword value`` line per setting, in a stable order."""
    lines = [MANAGED_HEADER, "# sshd keeps the first value it reads: this file sorts first in sshd_config.d.\n"]
    lines.extend("%s %s\n" % (keyword, value) for keyword, value in sorted(settings.items(), key=lambda kv: kv[0]))
    return "".join(lines)


def parse_effective_config(text):
    """``sshd -T`` output as {lowercase keyword: value} (first line of each keyword)."""
    effective = {}
    for line in text.splitlines():
        keyword, _sep, value = line.strip().partition(" ")
        if keyword and keyword.lower() not in effective:
            effective[keyword.lower()] = value.strip()
    return effective


def mismatches(settings, effective):
    """Settings whose effective value differs: {Keyword: (wanted, effective or None)}."""
    found = {}
    for keyword, wanted in settings.items():
        key = keyword.lower()
        actual = effective.get(key)
        normalised = EQUIVALENT_VALUES.get((key, actual), actual)
        if normalised is None or normalised.lower() != str(wanted).lower():
            found[keyword] = (str(wanted), actual)
    return found
