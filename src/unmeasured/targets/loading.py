"""Building targets from a config (`load_target`) or from in-memory objects (`as_target`).

Loading is safe by default: torch weights come from safetensors or ``torch.load`` with
``weights_only=True``, scikit-learn models from skops files whose types are all trusted;
pickle and joblib files, which can run arbitrary code, need ``trust_pickle=True``
(``--trust-pickle`` on the command line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unmeasured.entrypoints import load_callable
from unmeasured.errors import TargetError, UntrustedPickleError, one_of
from unmeasured.targets.base import OUTPUT_KINDS, Target, UnsupportedModelError, first_line
from unmeasured.targets.language import LanguageModel

OUTPUTS = ("auto", *OUTPUT_KINDS)
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")
MAX_LISTED_KEYS = 3


@dataclass(frozen=True)
class _Request:
    """What `load_target` was asked for, with paths still relative to ``base_dir``."""

    kind: str
    base_dir: Path
    field: str
    factory: str | None
    factory_kwargs: dict[str, Any]
    weights: str | None
    path: str | None
    output: str
    num_classes: int | None
    trust_pickle: bool
    device: str
    batch_size: int
    trusted_types: list[str]

    def file(self, name: str) -> Path:
        """The existing file the field ``name`` (``"path"`` or ``"weights"``) points to."""
        relative = getattr(self, name)
        if not relative:
            raise TargetError(f"{self.field}.{name}: required for kind '{self.kind}'")
        p = Path(relative).expanduser()
        p = p if p.is_absolute() else self.base_dir / p
        if not p.is_file():
            raise TargetError(f"{self.field}.{name}: {relative}: no such file")
        return p

    @property
    def explicit_output(self) -> str:
        """``output`` for adapters that default to logits (``"auto"`` means logits)."""
        return "logits" if self.output == "auto" else self.output


def load_target(
    *,
    kind: str,
    base_dir: Path,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    weights: str | None = None,
    path: str | None = None,
    output: str = "auto",
    num_classes: int | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
    batch_size: int = 512,
    trusted_types: list[str] | None = None,
    field: str = "target",
) -> Target | LanguageModel:
    """The target a ``[target]`` config table describes (paths relative to ``base_dir``).

    Args:
        kind: ``"torch"`` (``factory`` and optional ``weights``), ``"torchscript"``,
            ``"sklearn"`` or ``"onnx"`` (each a ``path``), or ``"transformers"`` (a causal
            language model: ``path`` is a local directory written by ``save_pretrained``).
        base_dir: what relative paths (and ``file.py`` factories) are relative to.
        factory: ``"file.py:build"`` or ``"package.module:build"``, a function returning the
            ``nn.Module``; called with ``factory_kwargs``.
        weights: a ``.safetensors`` file, or a ``.pt``/``.pth`` state dict (read with
            ``weights_only=True``); loaded strictly.
        path: the model file for the other kinds (``.skops``, ``.joblib``/``.pkl``, ``.onnx``,
            TorchScript).
        output: ``"auto"``, ``"logits"`` or ``"probabilities"``; ``"auto"`` means logits for
            torch, the file's own kind for ONNX and scikit-learn.
        num_classes: the number of classes, when it cannot be read from the model.
        trust_pickle: allow pickle-based files (they can run arbitrary code when loaded).
        device: where torch models run; ONNX and scikit-learn run on the CPU.
        batch_size: inputs per forward pass.
        trusted_types: types in a ``.skops`` file the user has reviewed and trusts.
        field: the config table's name, used in error messages (``"target.weights: ..."``).

    Returns:
        The target, with ``files`` naming what it was loaded from.

    Raises:
        TargetError: a missing or unloadable file, an unknown kind, a field the kind does not
            use, a factory that cannot be found, weights that do not fit the architecture
            (one line naming the field).
        UntrustedPickleError: a pickle-based file without ``trust_pickle``.
        MissingDependencyError: ONNX without onnxruntime installed.
    """
    if kind not in _LOADERS:
        raise TargetError(f"{field}.kind: unknown kind {kind!r}; choose {one_of(_LOADERS)}")
    if output not in OUTPUTS:
        raise TargetError(f"{field}.output: must be {one_of(OUTPUTS)}, got {output!r}")
    request = _Request(
        kind=kind,
        base_dir=Path(base_dir),
        field=field,
        factory=factory,
        factory_kwargs=dict(factory_kwargs or {}),
        weights=weights,
        path=path,
        output=output,
        num_classes=num_classes,
        trust_pickle=trust_pickle,
        device=device,
        batch_size=batch_size,
        trusted_types=list(trusted_types or []),
    )
    _check_unused_fields(request)
    with _errors_named_after(field):
        return _LOADERS[kind](request)


def resolve_num_classes(target: Target, example: np.ndarray) -> int:
    """Make sure ``target.num_classes`` is known, querying one example if needed."""
    infer = getattr(target, "infer_num_classes", None)
    if infer is not None:
        return int(infer(example))
    if not getattr(target, "num_classes", 0):
        target.num_classes = int(np.asarray(target.predict(example[:1])).shape[1])
    return target.num_classes


def as_target(obj: Any, *, num_classes: int | None = None, **kwargs: Any) -> Target:
    """Wrap an in-memory model for the Python API: a `Target` or a `LanguageModel` (returned
    as is), a torch
    ``nn.Module`` (a ``ScriptModule`` too), a fitted scikit-learn classifier, or a callable
    returning per-class outputs (give ``num_classes``).

    Args:
        obj: the model.
        num_classes: required for a callable; checked against a scikit-learn model.
        **kwargs: passed to the torch or callable adapter (``batch_size``, ``output``,
            ``device``, ``input_bounds``...).

    Raises:
        UnsupportedModelError: the object is none of these (a ``TypeError`` and a
            `TargetError`).
        TargetError: a callable without ``num_classes``, or a bad argument.

    Example:
        >>> from torch import nn
        >>> as_target(nn.Linear(4, 3)).description
        'torch Linear'
    """
    if isinstance(obj, (Target, LanguageModel)):
        return obj  # type: ignore[return-value]
    from torch import jit, nn

    if isinstance(obj, jit.ScriptModule):
        from unmeasured.targets.torch import TorchScriptTarget

        return TorchScriptTarget(obj, num_classes=num_classes, **kwargs)
    if isinstance(obj, nn.Module):
        from unmeasured.targets.torch import TorchTarget

        return TorchTarget(obj, num_classes=num_classes, **kwargs)
    if hasattr(obj, "predict_proba") or hasattr(obj, "decision_function"):
        from unmeasured.targets.sklearn import SklearnTarget

        target = SklearnTarget(obj)
        if num_classes is not None and num_classes != target.num_classes:
            raise TargetError(
                f"num_classes: {num_classes}, but the {type(obj).__name__} has "
                f"{target.num_classes} classes"
            )
        return target
    if callable(obj):
        if num_classes is None:
            raise TargetError(
                "num_classes: required to audit a plain callable (the width of its outputs)"
            )
        from unmeasured.targets.callable import CallableTarget

        return CallableTarget(obj, num_classes=num_classes, **kwargs)
    raise UnsupportedModelError(
        f"model: cannot audit a {type(obj).__name__}; give a torch nn.Module, a fitted "
        "scikit-learn classifier, a Target or a callable"
    )


def _load_torch(request: _Request) -> Target:
    from unmeasured.targets.torch import TorchTarget

    if not request.factory:
        raise TargetError(
            f"{request.field}.factory: required for kind 'torch' (e.g. \"model.py:build\")"
        )
    module, files = _build_module(request)
    if request.weights:
        weights = request.file("weights")
        _load_weights(module, weights, f"{request.field}.weights")
        files.append(weights)
    return TorchTarget(
        module,
        num_classes=request.num_classes,
        output=request.explicit_output,
        batch_size=request.batch_size,
        device=request.device,
        files=files,
        description=f"torch {type(module).__name__} from {request.factory}",
    )


def _load_torchscript(request: _Request) -> Target:
    from unmeasured.targets.torch import TorchScriptTarget

    return TorchScriptTarget(
        request.file("path"),
        num_classes=request.num_classes,
        output=request.explicit_output,
        batch_size=request.batch_size,
        device=request.device,
    )


def _load_sklearn(request: _Request) -> Target:
    from unmeasured.targets.sklearn import SklearnTarget

    path = request.file("path")
    target = SklearnTarget(_read_sklearn_file(path, request), files=(path,))
    if request.output not in ("auto", target.output):
        raise TargetError(
            f"{request.field}.output: this {target.description} gives {target.output!r}; "
            "leave output = 'auto'"
        )
    if request.num_classes is not None and request.num_classes != target.num_classes:
        raise TargetError(
            f"{request.field}.num_classes: {request.num_classes}, but {path.name} has "
            f"{target.num_classes} classes"
        )
    return target


def _load_onnx(request: _Request) -> Target:
    from unmeasured.targets.onnx import OnnxTarget

    return OnnxTarget(
        request.file("path"),
        output=request.output,
        num_classes=request.num_classes,
        batch_size=request.batch_size,
    )


def _load_transformers(request: _Request) -> LanguageModel:
    from unmeasured.targets.language import TransformersLanguageModel

    relative = request.path
    if not relative:
        raise TargetError(f"{request.field}.path: required for kind 'transformers' (a directory)")
    p = Path(relative).expanduser()
    if request.output != "auto":
        raise TargetError(
            f"{request.field}.output: not used by kind 'transformers' (it gives token "
            "probabilities); remove it"
        )
    if request.num_classes is not None:
        raise TargetError(
            f"{request.field}.num_classes: not used by kind 'transformers'; remove it"
        )
    return TransformersLanguageModel(
        p if p.is_absolute() else request.base_dir / p,
        batch_size=request.batch_size,
        device=request.device,
        field=f"{request.field}.path",
    )


_LOADERS: dict[str, Callable[[_Request], Target | LanguageModel]] = {
    "torch": _load_torch,
    "torchscript": _load_torchscript,
    "sklearn": _load_sklearn,
    "onnx": _load_onnx,
    "transformers": _load_transformers,
}
KINDS = tuple(_LOADERS)


def _check_unused_fields(request: _Request) -> None:
    """Refuse fields the kind ignores: a ``weights`` next to an ONNX path is a mistake."""
    unused: dict[str, object]
    if request.kind == "torch":
        unused = {"path": request.path}
    else:
        unused = {
            "factory": request.factory,
            "factory_kwargs": request.factory_kwargs,
            "weights": request.weights,
        }
    if request.kind in ("sklearn", "onnx") and request.device != "cpu":
        unused["device"] = request.device
    for name, value in unused.items():
        if value:
            raise TargetError(
                f"{request.field}.{name}: not used by kind '{request.kind}'; remove it"
            )


@contextmanager
def _errors_named_after(field: str) -> Iterator[None]:
    """Adapters name their fields ``target.*``; report them under the caller's table name."""
    try:
        yield
    except TargetError as e:
        message = str(e)
        if field == "target" or not message.startswith("target"):
            raise
        raise type(e)(field + message[len("target") :]) from None


def _build_module(request: _Request) -> tuple[Any, list[Path]]:
    from torch import nn

    field = f"{request.field}.factory"
    fn, path = load_callable(
        request.factory or "", request.base_dir, field=field, error=TargetError
    )
    try:
        module = fn(**request.factory_kwargs)
    except Exception as e:  # user code: any failure becomes one line naming the factory
        raise TargetError(
            f"{field}: {request.factory}() raised {type(e).__name__}: {first_line(e)}"
        ) from None
    if not isinstance(module, nn.Module):
        raise TargetError(
            f"{field}: {request.factory}() returned a {type(module).__name__}, "
            "not a torch nn.Module"
        )
    return module, [path] if path is not None else []


def _load_weights(module: Any, path: Path, field: str) -> None:
    """Load a state dict file into ``module``, strictly, with one-line errors."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:  # safetensors raises its own SafetensorError and OSErrors
            raise TargetError(
                f"{field}: {path.name}: not a safetensors file ({first_line(e)})"
            ) from None
    elif path.suffix in (".pt", ".pth"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # the unpickler's errors vary; all mean "not plain tensors"
            raise TargetError(
                f"{field}: {path.name}: refused by weights_only loading, which reads only "
                f"tensors and plain containers ({first_line(e)[:160]})"
            ) from None
        if not isinstance(state, dict):
            raise TargetError(
                f"{field}: {path.name}: expected a state dict, got a {type(state).__name__}"
            )
        not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if not_tensors:
            raise TargetError(
                f"{field}: {path.name}: not a flat state dict ({_first(not_tensors)} "
                "not tensors); save model.state_dict() instead of a training checkpoint"
            )
    else:
        raise TargetError(
            f"{field}: {path.name}: unsupported suffix; use {one_of(WEIGHT_SUFFIXES)}"
        )
    problems = _state_dict_problems(module.state_dict(), state)
    if problems:
        raise TargetError(f"{field}: {path.name} does not fit the architecture: {problems}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise TargetError(
            f"{field}: {path.name} does not fit the architecture: {first_line(e)}"
        ) from None


def _state_dict_problems(expected: dict[str, Any], given: dict[str, Any]) -> str:
    """Missing, unexpected and mis-shaped keys, the first few of each; empty if it fits."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshaped = [
        f"{k} {tuple(given[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        f"{label} {_first(keys)}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape of", misshaped),
        )
        if keys
    ]
    prefixes = {k.split(".", 1)[0] for k in unexpected}
    if missing and len(prefixes) == 1 and {k.split(".", 1)[-1] for k in unexpected} == set(missing):
        problems.append(f"every saved key has the extra prefix '{prefixes.pop()}.'; strip it")
    return "; ".join(problems)


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED_KEYS])
    more = len(items) - MAX_LISTED_KEYS
    return shown + (f" (and {more} more)" if more > 0 else "")


def _read_sklearn_file(path: Path, request: _Request) -> Any:
    field = f"{request.field}.path"
    if path.suffix == ".skops":
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=str(path))
        except Exception as e:  # skops raises zipfile, JSON and its own errors
            raise TargetError(f"{field}: {path.name}: not a skops file ({first_line(e)})") from None
        unreviewed = [t for t in untrusted if t not in request.trusted_types]
        if unreviewed and not request.trust_pickle:
            raise UntrustedPickleError(
                f"{field}: {path.name} contains types skops does not trust by default "
                f"({_first(unreviewed)}); list the ones you trust in "
                f"{request.field}.trusted_types, or pass --trust-pickle if you trust this file"
            )
        try:
            return sio.load(str(path), trusted=untrusted or None)
        except Exception as e:  # loading can fail in any user or library type's constructor
            raise TargetError(
                f"{field}: {path.name}: cannot load ({type(e).__name__}: {first_line(e)})"
            ) from None
    if path.suffix in PICKLE_SUFFIXES:
        if not request.trust_pickle:
            raise UntrustedPickleError(
                f"{field}: {path.name} is a pickle, which can run arbitrary code when loaded; "
                "save the model with skops, or pass --trust-pickle if you trust this file"
            )
        import joblib

        try:
            return joblib.load(path)
        except Exception as e:  # unpickling can raise anything
            raise TargetError(
                f"{field}: {path.name}: cannot unpickle ({type(e).__name__}: {first_line(e)})"
            ) from None
    raise TargetError(
        f"{field}: {path.name}: unsupported scikit-learn file; use '.skops' "
        f"(or {one_of(PICKLE_SUFFIXES)} with --trust-pickle)"
    )
