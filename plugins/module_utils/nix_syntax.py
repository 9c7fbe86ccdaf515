# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nix syntax: Python data written as Nix values, escaped, and NixOS module bodies.

``to_nix(value)`` writes None, bools, ints, strings, lists and dicts, plus ``NixExpr`` (a Nix expression
written as is: never user data), ``NixApply`` (a function applied, e.g. ``lib.mkForce { ... }``) and
``NixIndented`` (an indented string with expressions spliced in). ``ModuleWriter`` collects the
``path = value;`` lines of a module body. Pure; imports nothing of the collection. Used by ``nixos``
(pre-nixos.nix, the plan's NixOS module) and ``disko``.
"""
from __future__ import annotations

import re

NIX_KEYWORDS = frozenset(("if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"))
NIX_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*\Z")


class NixosConfigError(ValueError):
    """An input cannot be turned into a NixOS configuration; the message names it."""


class NixExpr:
    """A Nix expression written as is (``lib.mkForce``, ``pkgs.rsync``): never escaped, so never user data."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, NixExpr) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return "NixExpr(%r)" % self.text


class NixApply:
    """``function argument``, for ``lib.mkForce { ... }`` and friends."""

    def __init__(self, function, argument):
        self.function = function
        self.argument = argument


class NixIndented:
    """A multi-line string rendered as a Nix indented string; ``parts`` are text or ``NixExpr`` to interpolate."""

    def __init__(self, *parts):
        self.parts = parts


def nix_string(text):
    """A Nix double-quoted string literal: backslash, quote and ``${`` escaped; NUL refused."""
    text = str(text)
    if "\0" in text:
        raise NixosConfigError("a NUL character cannot be part of a Nix string: %r" % text)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"%s"' % escaped


def nix_list(items):
    """A one-line Nix list of strings."""
    return "[ %s ]" % " ".join(nix_string(item) for item in items) if items else "[ ]"


def nix_attr(name):
    """An attribute name: bare when it is a plain identifier, else a quoted string."""
    name = str(name)
    if NIX_IDENTIFIER.match(name) and name not in NIX_KEYWORDS:
        return name
    return nix_string(name)


def nix_attr_path(path):
    return ".".join(nix_attr(element) for element in path)


def indented_items(value):
    """The characters and interpolations of a ``NixIndented``, as one list."""
    items = []
    for part in value.parts:
        if isinstance(part, NixExpr):
            items.append(part)
            continue
        if "\0" in part:
            raise NixosConfigError("a NUL character cannot be part of a Nix string: %r" % part)
        items.extend(part)
    return items


def split_lines(items):
    lines = [[]]
    for item in items:
        if item == "\n":
            lines.append([])
        else:
            lines[-1].append(item)
    return lines


def spaces_to_escape(lines):
    """Lines whose first space must be escaped so that Nix strips exactly the padding and keeps the rest.

    Nix strips the smallest indentation of the lines that hold more than spaces, and drops a last line of
    spaces only. So: unless some line starts with something else than a space, the first non-empty line
    gets its first space escaped (which makes it count, at exactly the padding); so does a last line of
    spaces only."""
    def has_content(line):
        return any(item != " " for item in line)

    chosen = set()
    if not any(line and line[0] != " " for line in lines):
        non_empty = [index for index, line in enumerate(lines) if line]
        if non_empty:
            chosen.add(non_empty[0])
    if lines[-1] and not has_content(lines[-1]):
        chosen.add(len(lines) - 1)
    return chosen


def indented_body(lines, pad):
    """Escaped lines for the inside of ``''...''``: ``''$`` for a ``$`` that would start an interpolation,
    ``''\\t`` and ``''\\r``, ``''\\'`` for a quote that the next token would swallow, ``''\\ `` as chosen."""
    escape_space = spaces_to_escape(lines)
    rendered = []
    following = ""  # the emitted text after the current item, for the quote rule
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        emitted = []
        for position in range(len(line) - 1, -1, -1):
            item = line[position]
            if isinstance(item, NixExpr):
                text = "${%s}" % item.text
            elif item == "$" and following[:1] in ("{", "$"):
                text = "''$"
            elif item == "'":
                text = "'" if following[:1] not in ("", "'") else "''\\'"
            elif item == "\t":
                text = "''\\t"
            elif item == "\r":
                text = "''\\r"
            elif item == " " and position == 0 and index in escape_space:
                text = "''\\ "
            else:
                text = item
            emitted.append(text)
            following = text + following
        body = "".join(reversed(emitted))
        rendered.append((pad + body) if body else "")
        following = "\n" + following
    rendered.reverse()
    return rendered


def render_indented(value, indent):
    """``''`` on the value's line, the text padded to ``indent + 2``, the closing ``''`` under the value."""
    lines = split_lines(indented_items(value))
    rendered = indented_body(lines, " " * (indent + 2))
    if rendered[-1] == "":
        rendered[-1] = " " * indent + "''"
    else:
        rendered[-1] += "''"
    return "''\n" + "\n".join(rendered)


def is_scalar(value):
    return value is None or isinstance(value, (bool, int, str, NixExpr))


def to_nix(value, indent=0):
    """Python data as a Nix value; ``indent`` is the column of the line the value starts on."""
    if isinstance(value, NixExpr):
        return value.text
    if isinstance(value, NixApply):
        return "%s %s" % (value.function.text, to_nix(value.argument, indent))
    if isinstance(value, NixIndented):
        return render_indented(value, indent)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return nix_string(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[ ]"
        inline = [to_nix(item) for item in value]
        if all(is_scalar(item) for item in value) or (
            not any("\n" in item for item in inline) and len(" ".join(inline)) <= 60
        ):
            return "[ %s ]" % " ".join(inline)
        pad = " " * (indent + 2)
        items = "".join("%s%s\n" % (pad, to_nix(item, indent + 2)) for item in value)
        return "[\n%s%s]" % (items, " " * indent)
    if isinstance(value, dict):
        if not value:
            return "{ }"
        if all(is_scalar(item) for item in value.values()) and len(value) <= 2:
            inline = "{ %s }" % " ".join("%s = %s;" % (nix_attr(k), to_nix(v)) for k, v in value.items())
            if len(inline) <= 60:
                return inline
        pad = " " * (indent + 2)
        items = "".join("%s%s = %s;\n" % (pad, nix_attr(k), to_nix(v, indent + 2)) for k, v in value.items())
        return "{\n%s%s}" % (items, " " * indent)
    raise NixosConfigError("cannot write %r (%s) as a Nix value" % (value, type(value).__name__))


def nix_comment(text):
    """``# text`` on one line whatever ``text`` holds (a newline in a comment would start code)."""
    return "# " + re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()


def mk_force(value):
    return NixApply(NixExpr("lib.mkForce"), value)


def mk_default(value):
    return NixApply(NixExpr("lib.mkDefault"), value)


class ModuleWriter:
    """Lines of a NixOS module body: comments and ``path = value;`` assignments, two spaces in."""

    def __init__(self):
        self.lines = []

    def blank(self):
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def comment(self, text):
        self.lines.append("  " + nix_comment(text))

    def set(self, path, value):
        self.lines.append("  %s = %s;" % (nix_attr_path(path), to_nix(value, 2)))

    def text(self):
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        return "\n".join(self.lines)
