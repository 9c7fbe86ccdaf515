# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for SSH hardening: public key checks, the sshd drop-in, the effective config, Match blocks,
the host key's fingerprint."""
from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
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


# Options sshd reads in front of a key (man sshd, AUTHORIZED_KEYS FILE FORMAT); names are case-insensitive.
FLAG_OPTIONS = ("restrict", "cert-authority")
# Flags sshd also reads with a "no-" in front.
NEGATABLE_OPTIONS = (
    "agent-forwarding",
    "port-forwarding",
    "pty",
    "user-rc",
    "x11-forwarding",
    "touch-required",
    "verify-required",
)
VALUE_OPTIONS = (
    "command",
    "environment",
    "expiry-time",
    "from",
    "permitlisten",
    "permitopen",
    "principals",
    "tunnel",
)

# What follows the key type in the key data, as SSH strings: (how many, {index: exact length}).
KEY_LAYOUTS = {
    "ssh-ed25519": (1, {0: 32}),
    "ssh-rsa": (2, {}),
    "ecdsa-sha2-nistp256": (2, {}),
    "ecdsa-sha2-nistp384": (2, {}),
    "ecdsa-sha2-nistp521": (2, {}),
    "sk-ssh-ed25519@openssh.com": (2, {0: 32}),
    "sk-ecdsa-sha2-nistp256@openssh.com": (3, {}),
}

OPTION_NAME = re.compile(r"[A-Za-z0-9-]*")
ENVIRONMENT_VALUE = re.compile(r"[A-Za-z0-9_]+=")
EXPIRY_VALUE = re.compile(r"\d{8}(\d{4}(\d{2})?)?Z?\Z")
PERMITOPEN_VALUE = re.compile(r"(\[[^]]+\]|[^:\[\]]+):(\*|\d{1,5})\Z")
PERMITLISTEN_VALUE = re.compile(r"((\[[^]]+\]|[^:\[\]]+):)?(\*|\d{1,5})\Z")


def check_public_key(line):
    """Return the key line as written to authorized_keys, or raise ValueError saying why sshd would not use it.

    Reads the line as sshd does: optional comma-separated options (quoted values may hold commas and spaces),
    then the key type, the base64 key data whose own type must be the same, and an optional comment.
    """
    text = (line or "").strip()
    if not text:
        raise ValueError("empty key")
    if "\n" in text or "\r" in text:
        raise ValueError(
            "spans several lines: a line break after %r would give sshd a second, unchecked line "
            "(give one key per list item)" % shorten(text.splitlines()[0])
        )
    if any(ord(char) < 32 and char != "\t" for char in text):
        raise ValueError("holds a control character in %r" % shorten(text))
    fields = text.split(None, 1)
    if not any(field in KEY_TYPES for field in text.split()[:-1]):
        raise ValueError("no known key type (%s) followed by key data in %r" % (", ".join(KEY_TYPES), shorten(text)))
    if fields[0] not in KEY_TYPES:
        try:
            options, rest = split_options(text)
            parsed = parse_options(options)
        except ValueError as err:
            raise ValueError("%s in %r" % (err, shorten(text))) from None
        for name, value in parsed:
            problem = option_value_problem(name, value)
            if problem:
                raise ValueError("%s in %r" % (problem, shorten(text)))
        fields = rest.split(None, 1)
        if not fields:
            raise ValueError("no key type after the options in %r" % shorten(text))
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        raise ValueError(
            "no known key type (%s) at %r after the options in %r" % (", ".join(KEY_TYPES), key_type, shorten(text))
        )
    blob = fields[1].split(None, 1)[0] if len(fields) > 1 else ""
    if not blob:
        raise ValueError("no known key type (%s) followed by key data in %r" % (", ".join(KEY_TYPES), shorten(text)))
    problem = key_data_problem(key_type, blob)
    if problem:
        raise ValueError("%s in %r" % (problem, shorten(text)))
    return text


def split_options(text):
    """(options, the rest of the line): the options end at the first space or tab outside double quotes."""
    quoted = False
    index = 0
    while index < len(text) and (quoted or text[index] not in " \t"):
        if text[index] == "\\" and text[index + 1 : index + 2] == '"':
            index += 1
        elif text[index] == '"':
            quoted = not quoted
        index += 1
    if quoted:
        raise ValueError("unterminated quote in the options")
    return text[:index], text[index:].lstrip(" \t")


def parse_options(options):
    """[(lowercase name, value or None)]; raises ValueError where sshd would refuse the line."""
    parsed = []
    index = 0
    while index < len(options):
        name = OPTION_NAME.match(options, index).group(0)
        index += len(name)
        if not name:
            if options[index] == ",":
                raise ValueError("empty option (two commas in a row)")
            raise ValueError("unknown option at %r" % shorten(options[index:], 20))
        lower = name.lower()
        value = None
        if options[index : index + 1] == "=":
            if lower not in VALUE_OPTIONS:
                raise ValueError('option "%s" takes no value' % name)
            if options[index + 1 : index + 2] != '"':
                raise ValueError('option "%s" needs a quoted value (%s="...")' % (name, lower))
            value, index = read_quoted(options, index + 2, name)
        elif lower in VALUE_OPTIONS:
            raise ValueError('option "%s" needs a quoted value (%s="...")' % (name, lower))
        elif lower not in FLAG_OPTIONS + NEGATABLE_OPTIONS and not (
            lower.startswith("no-") and lower[3:] in NEGATABLE_OPTIONS
        ):
            raise ValueError('unknown option "%s" (sshd knows %s)' % (name, ", ".join(known_option_names())))
        parsed.append((lower, value))
        if index < len(options):
            if options[index] != ",":
                raise ValueError(
                    '%r after option "%s" (options are separated by commas)' % (shorten(options[index:], 20), name)
                )
            index += 1
            if index == len(options):
                raise ValueError("empty option (a comma at the end)")
    return parsed


def read_quoted(options, index, name):
    """The value that starts at ``index`` (after its opening quote), ``\\"`` unescaped, and the index after it."""
    chars = []
    while index < len(options) and options[index] != '"':
        if options[index] == "\\" and options[index + 1 : index + 2] == '"':
            index += 1
        chars.append(options[index])
        index += 1
    if index >= len(options):
        raise ValueError('unterminated quote in option "%s"' % name)
    return "".join(chars), index + 1


def known_option_names():
    names = list(FLAG_OPTIONS) + ["[no-]" + name for name in NEGATABLE_OPTIONS]
    names += ['%s=""' % name for name in VALUE_OPTIONS]
    return sorted(names, key=lambda name: name.replace("[no-]", ""))


def option_value_problem(name, value):
    """Why sshd could not use this option's value, or None."""
    if value is None:
        return None
    if name == "expiry-time" and not EXPIRY_VALUE.match(value):
        return 'expiry-time "%s" is not a time sshd reads (YYYYMMDD[HHMM[SS]])' % value
    if name == "environment" and not ENVIRONMENT_VALUE.match(value):
        return 'environment "%s" is not NAME=value' % value
    if name == "tunnel" and not (value.isdigit() or value == "any"):
        return 'tunnel "%s" is not a tun device number' % value
    if name == "permitopen" and not PERMITOPEN_VALUE.match(value):
        return 'permitopen "%s" is not host:port' % value
    if name == "permitlisten" and not PERMITLISTEN_VALUE.match(value):
        return 'permitlisten "%s" is not [host:]port' % value
    if name == "from":
        for pattern in value.split(","):
            pattern = pattern.lstrip("!")
            if not pattern:
                return 'from "%s" has an empty pattern' % value
            if "/" in pattern:
                try:
                    ipaddress.ip_network(pattern, strict=False)
                except ValueError:
                    return 'from "%s" is not an address/prefix' % pattern
    return None


def key_data_problem(key_type, blob):
    """Why the base64 key data is not a whole ``key_type`` public key, or None."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "key data is not base64"
    count, sizes = KEY_LAYOUTS[key_type]
    strings = []
    offset = 0
    while len(strings) < 1 + count:
        if offset + 4 > len(raw):
            break
        (length,) = struct.unpack(">I", raw[offset : offset + 4])
        if offset + 4 + length > len(raw):
            break
        strings.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
        if len(strings) == 1 and strings[0].decode("ascii", "replace") != key_type:
            return "key says %s but its data is %s" % (key_type, strings[0].decode("ascii", "replace"))
    if not strings:
        return "key data too short"
    if len(strings) < 1 + count:
        return "key data ends in the middle of the %s key (cut short?)" % key_type
    if offset < len(raw):
        return "trailing bytes after the %s key data" % key_type
    for index, size in sorted(sizes.items()):
        if len(strings[1 + index]) != size:
            return "%s key is %d bytes, not %d bytes" % (key_type, len(strings[1 + index]), size)
    if key_type.startswith(("ecdsa-", "sk-ecdsa-")):
        curve = strings[1].decode("ascii", "replace")
        if not key_type.split("@")[0].endswith("-" + curve):
            return "curve %s in a %s key" % (curve, key_type)
    return None


def shorten(text, limit=60):
    """``text`` within ``limit`` characters, its start and its end kept (the comment at the end names the key)."""
    if len(text) <= limit:
        return text
    tail = limit * 2 // 5
    return text[: limit - tail - 3] + "..." + text[-tail:]


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


# Where sshd finds the keys it lets in: only the file this collection writes, no command that could add others.
PINNED_SETTINGS = {"AuthorizedKeysFile": ".ssh/authorized_keys", "AuthorizedKeysCommand": "none"}

# Other spellings sshd reads for a keyword (servconf.c), as {alias: keyword}.
KEYWORD_ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "dsaauthentication": "pubkeyauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
}

# The connection sshd -T is asked about by default; a context made for a Match block starts from it.
DEFAULT_CONNECTION = {"user": "root", "host": "localhost", "addr": "127.0.0.1"}
MATCH_CONNECTION = dict(DEFAULT_CONNECTION, laddr="127.0.0.1", lport="22")
# Match criterion -> the field of sshd -T -C that it tests.
MATCH_FIELDS = {"user": "user", "host": "host", "address": "addr", "localaddress": "laddr", "localport": "lport",
                "rdomain": "rdomain"}
INCLUDE_DEPTH = 16
CONFIG_LINE = re.compile(r"(\S+?)(?:\s*=\s*|\s+)(.*)\Z")


def connection_spec(connection):
    return ",".join("%s=%s" % (key, value) for key, value in connection.items())


def match_blocks(config, read, expand):
    """The ``Match`` blocks of sshd's configuration files, ``Include`` followed as sshd does, in reading order.

    ``read(path)`` gives a file's text (None when missing), ``expand(pattern)`` the sorted paths a glob names;
    relative paths are under the directory of ``config`` (/etc/ssh for sshd). Each block:
    {"match": its Match line, "where": "file:line", "criteria": [(criterion, patterns)],
    "settings": [(keyword, value, keyword as written)]}.
    """
    blocks = []
    base = os.path.dirname(config)

    def walk(path, block, depth):
        current = block
        for number, raw in enumerate((read(path) or "").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            found = CONFIG_LINE.match(line)
            keyword, value = (found.group(1), found.group(2).strip()) if found else (line, "")
            lower = keyword.lower()
            if lower == "match":
                current = {"match": line, "where": "%s:%d" % (path, number), "criteria": match_criteria(value),
                           "settings": []}
                blocks.append(current)
            elif lower == "include" and depth < INCLUDE_DEPTH:
                for pattern in split_words(value):
                    for included in expand(pattern if os.path.isabs(pattern) else os.path.join(base, pattern)):
                        walk(included, current, depth + 1)
            elif current is not None:
                current["settings"].append((lower, unquote(value), keyword))

    walk(config, None, 0)
    return blocks


def split_words(value):
    return [unquote(word) for word in re.findall(r'"[^"]*"|\S+', value)]


def unquote(value):
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def match_criteria(value):
    """[(lowercase criterion, patterns)] of a Match line; ``All`` has no patterns."""
    words = split_words(value)
    criteria = []
    index = 0
    while index < len(words):
        name = words[index].lower()
        if name == "all":
            criteria.append((name, ""))
            index += 1
        else:
            criteria.append((name, words[index + 1] if index + 1 < len(words) else ""))
            index += 2
    return criteria


def match_contexts(blocks):
    """[(block, sshd -T -C spec)] for the blocks a connection can be made up for: one that each block matches.

    A block with a criterion no made-up connection can satisfy (Group, only negated patterns of a kind it needs)
    gets none; ``setting_overrides`` reads its lines instead.
    """
    contexts = []
    for block in blocks:
        connection = dict(MATCH_CONNECTION)
        for name, patterns in block["criteria"]:
            if name == "all":
                continue
            field = MATCH_FIELDS.get(name)
            value = example_for(name, patterns) if field else None
            if value is None:
                connection = None
                break
            connection[field] = value
        if connection is not None:
            contexts.append((block, connection_spec(connection)))
    return contexts


def example_for(name, patterns):
    """A value the first positive pattern of ``patterns`` matches, or None."""
    for pattern in patterns.split(","):
        if not pattern or pattern.startswith("!"):
            continue
        if name in ("address", "localaddress"):
            if "/" in pattern:
                try:
                    network = ipaddress.ip_network(pattern, strict=False)
                except ValueError:
                    continue
                return str(network.network_address + (1 if network.num_addresses > 1 else 0))
            candidate = pattern.replace("*", "1").replace("?", "1")
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                continue
        if name == "localport":
            return pattern if pattern.isdigit() else None
        return pattern.replace("*", "x").replace("?", "x")
    return None


def setting_overrides(blocks, settings, caught=()):
    """Lines in Match blocks that set a managed keyword to another value: [message], in reading order.

    ``caught`` holds the (block's where, lowercase keyword) already reported from sshd's own answer.
    """
    wanted = {keyword.lower(): (keyword, str(value)) for keyword, value in settings.items()}
    found = []
    for block in blocks:
        for lower, value, written in block["settings"]:
            canonical = KEYWORD_ALIASES.get(lower, lower)
            if canonical not in wanted:
                continue
            keyword, wanted_value = wanted[canonical]
            if (block["where"], canonical) in caught:
                continue
            normalised = EQUIVALENT_VALUES.get((canonical, value.lower()), value)
            if normalised.lower() != wanted_value.lower():
                name = written if canonical == lower else "%s (%s)" % (written, keyword)
                found.append("%r (%s) sets %s %s, wanted %s" % (block["match"], block["where"], name, value,
                                                                wanted_value))
    return found


# How ssh-keygen -l names each key type, at the end of its line.
KEY_TYPE_LABELS = {
    "ssh-ed25519": "ED25519",
    "ssh-rsa": "RSA",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}


def host_key_fingerprint(text):
    """``SHA256:... (ED25519)`` as ``ssh-keygen -lf`` prints it for a public key file's text; None when unusable."""
    fields = (text or "").split()
    if len(fields) < 2 or fields[0] not in KEY_TYPE_LABELS or key_data_problem(fields[0], fields[1]):
        return None
    digest = hashlib.sha256(base64.b64decode(fields[1])).digest()
    return "SHA256:%s (%s)" % (base64.b64encode(digest).decode().rstrip("="), KEY_TYPE_LABELS[fields[0]])
