# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image's bytecode cache for zip imports (iso/os-layer/python/prenixos_zip_pycache.py), in fresh Pythons."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

HOOK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "os-layer", "python")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the hook works for root only")


def make_zip(path, source):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("payload/__init__.py", "")
        archive.writestr("payload/mod.py", source)
    return str(path)


def run_import(archive, cache, hook=True):
    """Import payload.mod from ``archive`` in a new Python; its VALUE and the file its code says it came from."""
    prelude = "import sys; sys.path.insert(0, %r); import prenixos_zip_pycache; " % HOOK_DIR if hook else ""
    code = prelude + ("import sys; sys.path.insert(0, %r); from payload import mod; "
                      "print(mod.VALUE); print(mod.where.__code__.co_filename)" % archive)
    env = dict(os.environ, PRENIXOS_ZIP_PYCACHE=str(cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return out.splitlines()


SOURCE = "VALUE = 'first'\ndef where():\n    pass\n"


def test_the_code_compiled_once_is_read_back_from_the_cache_for_another_zip(tmp_path):
    cache = tmp_path / "cache"
    first = make_zip(tmp_path / "one.zip", SOURCE)
    assert run_import(first, cache) == ["first", os.path.join(first, "payload", "mod.py")]
    entries = sorted(os.listdir(cache))
    assert len(entries) == 2  # payload/__init__.py and payload/mod.py
    # Plant a marker in the entries: an import that reads them back must show it.
    import marshal

    for name in entries:
        path = cache / name
        code = marshal.loads(path.read_bytes())
        if "VALUE" in code.co_names:
            path.write_bytes(marshal.dumps(compile(SOURCE.replace("first", "from the cache"), "x", "exec")))
    second = make_zip(tmp_path / "two.zip", SOURCE)
    assert run_import(second, cache) == ["from the cache", os.path.join(second, "payload", "mod.py")]


def test_changed_source_is_compiled_again(tmp_path):
    cache = tmp_path / "cache"
    run_import(make_zip(tmp_path / "one.zip", SOURCE), cache)
    changed = make_zip(tmp_path / "two.zip", SOURCE.replace("first", "second"))
    assert run_import(changed, cache)[0] == "second"
    assert len(os.listdir(cache)) == 3


def test_a_broken_entry_is_compiled_again_and_replaced(tmp_path):
    cache = tmp_path / "cache"
    archive = make_zip(tmp_path / "one.zip", SOURCE)
    run_import(archive, cache)
    for name in os.listdir(cache):
        (cache / name).write_bytes(b"not marshal data")
    assert run_import(archive, cache)[0] == "first"
    assert run_import(archive, cache, hook=False)[0] == "first"
    import marshal

    assert all(marshal.loads((cache / name).read_bytes()) for name in os.listdir(cache))


def test_an_unwritable_cache_still_imports(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_import(make_zip(tmp_path / "one.zip", SOURCE), blocker / "cache")[0] == "first"


def run_compile(cache, dont_inherit=True):
    """compile() a module's source as Mitogen does, in a new Python with the hook; its VALUE and file name."""
    code = ("import sys; sys.path.insert(0, %r); import prenixos_zip_pycache; "
            "namespace = {}; exec(compile(%r, '/from/the/controller/mod.py', 'exec', 0, %r), namespace); "
            "print(namespace['VALUE']); print(namespace['where'].__code__.co_filename)"
            % (HOOK_DIR, SOURCE, dont_inherit))
    env = dict(os.environ, PRENIXOS_ZIP_PYCACHE=str(cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def test_source_that_mitogen_compiles_is_read_back_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    assert run_compile(cache) == ["first", "/from/the/controller/mod.py"]
    (entry,) = os.listdir(cache)
    import marshal

    (cache / entry).write_bytes(marshal.dumps(compile(SOURCE.replace("first", "from the cache"), "x", "exec")))
    assert run_compile(cache) == ["from the cache", "/from/the/controller/mod.py"]


def test_a_compile_that_inherits_its_callers_flags_is_not_cached(tmp_path):
    cache = tmp_path / "cache"
    assert run_compile(cache, dont_inherit=False)[0] == "first"
    assert not cache.exists() or not os.listdir(cache)
