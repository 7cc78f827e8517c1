"""Every reference a reader can follow resolves inside the repository: no file (code, docs, tests, bench)
cites a document that lives elsewhere, every ``fastlb.<module>`` named exists, and docs/architecture.md
gives every C unit of fastlb/ its line."""

from __future__ import annotations

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "fastlb"

# Spelled in pieces so that this file does not cite them itself.
OUTSIDE = [re.escape(name) for name in ("DESIGN" + ".md", "STYLE" + ".md", "../" + "shared")]
OUTSIDE.append(r"(?<![\w/.-])" + "reference" + "/")
OUTSIDE_RE = re.compile("|".join(OUTSIDE))
MODULE_RE = re.compile(r"\bfastlb((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
# fastlb.toml, fastlb.log ...: file names, not modules.
FILE_SUFFIXES = {"toml", "log", "sock", "service", "pid", "pem", "json", "yaml", "yml", "conf", "cfg", "md"}


def text_files() -> list[tuple[str, str]]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    out = []
    for name in names.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        raw = path.read_bytes()
        if b"\0" in raw:
            continue
        try:
            out.append((name, raw.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return out


def module_exists(dotted: str) -> bool:
    """Whether fastlb<dotted> names a module of the package (or a name its package's __init__ defines);
    what follows a module (its attributes) is not checked."""
    parts = dotted.strip(".").split(".")
    if parts[0] in FILE_SUFFIXES:
        return True
    here = PKG
    for part in parts:
        if (here / part).is_dir():
            here = here / part
            continue
        if any((here / f"{part}{ext}").is_file() for ext in (".py", ".pyx", ".pxd", ".pyi")):
            return True
        init = here / "__init__.py"
        return init.is_file() and re.search(rf"\b{re.escape(part)}\b", init.read_text()) is not None
    return True


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in text_files()
        for m in OUTSIDE_RE.finditer(text)
    ]
    assert not found, "\n".join(found)


def test_every_fastlb_module_named_exists() -> None:
    found = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: fastlb{m.group(1)}"
        for name, text in text_files()
        for m in MODULE_RE.finditer(text)
        if not module_exists(m.group(1))
    ]
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_look_for() -> None:
    assert OUTSIDE_RE.search("see " + "DESIGN" + ".md") and OUTSIDE_RE.search("in `" + "reference" + "/x.md`")
    assert not OUTSIDE_RE.search("docs/internals/reference" + "/x") and not OUTSIDE_RE.search("docs/config.md")
    assert module_exists(".marathon.build") and module_exists(".emulator.emulator.MarathonEmulator")
    assert module_exists("._core.DataPlane") and module_exists(".toml")
    assert not module_exists(".rou" + "tes") and not module_exists(".marathon.nothing")


def test_architecture_gives_every_c_unit_its_line() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    generated = {"_core.c", "_testhooks.c"}  # Cython's output
    units = {re.sub(r"(-t)?\.[ch]$", "", p.name) for p in PKG.glob("_*.[ch]") if p.name not in generated}
    missing = sorted(u for u in units if not re.search(rf"`{re.escape(u)}(\*|[.-][^`]*)`", doc))
    assert units and not missing, missing
