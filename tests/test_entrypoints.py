"""User files named in a config import their own neighbours, even when another folder's module
of the same name was loaded earlier in the process."""

from __future__ import annotations

from pathlib import Path

from unmeasured.entrypoints import load_callable
from unmeasured.errors import ConfigError


def test_each_file_imports_its_own_neighbour(tmp_path: Path) -> None:
    for name, width in (("a", 3), ("b", 5)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "arch.py").write_text(f"WIDTH = {width}\n")
        (folder / "entry.py").write_text("import arch\n\ndef width():\n    return arch.WIDTH\n")
    first, _ = load_callable("entry.py:width", tmp_path / "a", field="f", error=ConfigError)
    second, _ = load_callable("entry.py:width", tmp_path / "b", field="f", error=ConfigError)
    assert (first(), second()) == (3, 5)
