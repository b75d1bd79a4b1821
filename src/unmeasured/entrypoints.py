"""User code named in a config: ``"file.py:function"`` (relative to the config) or
``"package.module:function"``. Shared by model factories and training recipes."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unmeasured.errors import InputError


def load_callable(
    spec: str, base_dir: Path, *, field: str, error: type[InputError]
) -> tuple[Callable[..., Any], Path | None]:
    """Import the function ``spec`` names; return it and the file it came from (if a file).

    Raises:
        error: a malformed spec, a missing file or module, an import that fails, or no such
            function (one line naming ``field``).
    """
    source, sep, name = spec.rpartition(":")
    if not sep or not source or not name:
        raise error(
            f'{field}: \'{spec}\' must look like "file.py:function" or "package.module:function"'
        )
    path = None
    if source.endswith(".py"):
        path = Path(source).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise error(f"{field}: {source}: no such file")
        module_spec = importlib.util.spec_from_file_location(f"_unmeasured_user_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise error(f"{field}: cannot import {source}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        _make_neighbours_importable(path.parent)
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise error(f"{field}: importing {source} failed: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as e:
            raise error(f"{field}: cannot import module '{source}' ({e})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise error(f"{field}: '{spec}': no function '{name}' in {source}")
    return fn, path


def _make_neighbours_importable(folder: Path) -> None:
    """Let a user's file import the modules next to it (a recipe.py importing model.py): the
    folder goes first on ``sys.path``, and a module of the same name cached from another folder
    (an earlier config of the same process) is forgotten so the neighbour is imported instead."""
    folder = folder.resolve()
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))
    for neighbour in folder.glob("*.py"):
        cached = sys.modules.get(neighbour.stem)
        origin = getattr(cached, "__file__", None)
        if cached is not None and origin and Path(origin).resolve().parent != folder:
            del sys.modules[neighbour.stem]
