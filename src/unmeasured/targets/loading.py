"""Building targets from a config (`load_target`) or from in-memory objects (`as_target`).

Loading is safe by default: torch weights come from safetensors or ``torch.load`` with
``weights_only=True``, scikit-learn models from skops files whose types are all trusted;
pickle and joblib files, which can run arbitrary code, need ``trust_pickle=True``
(``--trust-pickle`` on the command line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unmeasured.entrypoints import load_callable
from unmeasured.errors import TargetError, UntrustedPickleError, one_of
from unmeasured.targets.base import Target

KINDS = ("torch", "torchscript", "sklearn", "onnx")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


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
) -> Target:
    """The target a ``[target]`` config table describes (paths relative to ``base_dir``).

    Raises:
        TargetError: a missing or unloadable file, an unknown kind, a factory that cannot be
            found, weights that do not fit the architecture (one line naming the field).
        UntrustedPickleError: a pickle-based file without ``trust_pickle``.
    """
    base_dir = Path(base_dir)
    if kind == "torch":
        from unmeasured.targets.torch import TorchTarget

        if not factory:
            raise TargetError("target.factory: required for kind 'torch' (e.g. \"model.py:build\")")
        module, files = _build_module(factory, factory_kwargs or {}, base_dir)
        if weights:
            wpath = _existing(base_dir, weights, "target.weights")
            _load_weights(module, wpath)
            files.append(wpath)
        out = TorchTarget(
            module,
            num_classes=num_classes,
            batch_size=batch_size,
            device=device,
            files=files,
            description=f"torch {type(module).__name__} from {factory}",
        )
    elif kind == "torchscript":
        from unmeasured.targets.torch import load_torchscript

        out = load_torchscript(
            _existing(base_dir, _need(path, kind), "target.path"),
            num_classes=num_classes,
            batch_size=batch_size,
            device=device,
        )
    elif kind == "sklearn":
        from unmeasured.targets.sklearn import SklearnTarget

        p = _existing(base_dir, _need(path, kind), "target.path")
        out = SklearnTarget(_load_sklearn(p, trust_pickle, trusted_types or []), files=(p,))
    elif kind == "onnx":
        from unmeasured.targets.onnx import OnnxTarget

        out = OnnxTarget(
            _existing(base_dir, _need(path, kind), "target.path"),
            output=output,
            batch_size=batch_size,
        )
        if num_classes:
            out.num_classes = num_classes
    else:
        raise TargetError(f"target.kind: unknown kind '{kind}'; choose {one_of(KINDS)}")
    if output != "auto" and kind != "onnx":
        out.output = output  # type: ignore[assignment]
    return out


def resolve_num_classes(target: Target, example: np.ndarray) -> int:
    """Make sure ``target.num_classes`` is known, querying one example if needed."""
    infer = getattr(target, "infer_num_classes", None)
    if infer is not None:
        return int(infer(example))
    if not getattr(target, "num_classes", 0):
        target.num_classes = int(np.asarray(target.predict(example[:1])).shape[1])
    return target.num_classes


def as_target(obj: Any, *, num_classes: int | None = None, **kwargs: Any) -> Target:
    """Wrap an in-memory model: a `Target` (as is), a torch ``nn.Module``, a fitted
    scikit-learn classifier, or a callable returning logits (give ``num_classes``).

    Raises:
        TargetError: the object is none of these, or a callable without ``num_classes``.
    """
    if isinstance(obj, Target):
        return obj
    try:
        from torch import nn
    except ImportError:  # pragma: no cover
        nn = None  # type: ignore[assignment]
    if nn is not None and isinstance(obj, nn.Module):
        from unmeasured.targets.torch import TorchTarget

        return TorchTarget(obj, num_classes=num_classes, **kwargs)
    if hasattr(obj, "predict_proba") or hasattr(obj, "decision_function"):
        from unmeasured.targets.sklearn import SklearnTarget

        return SklearnTarget(obj)
    if callable(obj):
        if num_classes is None:
            raise TargetError("model: a plain callable needs num_classes")
        from unmeasured.targets.callable import CallableTarget

        return CallableTarget(obj, num_classes=num_classes, **kwargs)
    raise TargetError(
        f"model: cannot audit a {type(obj).__name__}; give a torch nn.Module, a fitted "
        "scikit-learn classifier, a Target or a callable"
    )


def _need(path: str | None, kind: str) -> str:
    if not path:
        raise TargetError(f"target.path: required for kind '{kind}'")
    return path


def _existing(base_dir: Path, relative: str, field: str) -> Path:
    p = Path(relative).expanduser()
    p = p if p.is_absolute() else base_dir / p
    if not p.is_file():
        raise TargetError(f"{field}: {relative}: no such file")
    return p


def _build_module(factory: str, kwargs: dict[str, Any], base_dir: Path):  # type: ignore[no-untyped-def]
    from torch import nn

    fn, path = load_callable(factory, base_dir, field="target.factory", error=TargetError)
    files: list[Path] = [path] if path is not None else []
    try:
        module = fn(**kwargs)
    except Exception as e:
        raise TargetError(f"target.factory: {factory}() raised {type(e).__name__}: {e}") from None
    if not isinstance(module, nn.Module):
        raise TargetError(
            f"target.factory: {factory}() returned a {type(module).__name__}, not a torch nn.Module"
        )
    return module, files


def _load_weights(module: Any, path: Path) -> None:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:
            raise TargetError(
                f"target.weights: {path.name}: not a safetensors file ({e})"
            ) from None
    elif path.suffix in (".pt", ".pth"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TargetError(
                f"target.weights: {path.name}: not a plain state dict of tensors (refused by "
                f"weights_only loading: {first[:160]})"
            ) from None
        if not isinstance(state, dict):
            raise TargetError(
                f"target.weights: {path.name}: expected a state dict, got {type(state).__name__}"
            )
    else:
        raise TargetError(
            f"target.weights: {path.name}: unsupported suffix; use '.safetensors', '.pt' or '.pth'"
        )
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even when not strict
        detail = " ".join(str(e).split())
        detail = detail.split(":", 1)[-1].strip()[:200]
        raise TargetError(
            f"target.weights: {path.name} does not fit the architecture: {detail}"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append("missing " + ", ".join(result.missing_keys[:3]))
    if result.unexpected_keys:
        problems.append("unexpected " + ", ".join(result.unexpected_keys[:3]))
    if problems:
        raise TargetError(
            f"target.weights: {path.name} does not fit the architecture: {'; '.join(problems)}"
        )


def _load_sklearn(path: Path, trust_pickle: bool, trusted_types: list[str]) -> Any:
    if path.suffix == ".skops":
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=str(path))
        except Exception as e:
            raise TargetError(f"target.path: {path.name}: not a skops file ({e})") from None
        unreviewed = [t for t in untrusted if t not in trusted_types]
        if unreviewed and not trust_pickle:
            raise UntrustedPickleError(
                f"target.path: {path.name} contains types skops does not trust by default "
                f"({', '.join(unreviewed[:5])}); list the ones you trust in target.trusted_types, "
                "or pass --trust-pickle if you trust this file"
            )
        return sio.load(str(path), trusted=untrusted or None)
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise UntrustedPickleError(
                f"target.path: {path.name} is a pickle, which can run arbitrary code when loaded; "
                "save the model with skops, or pass --trust-pickle if you trust this file"
            )
        import joblib

        return joblib.load(path)
    raise TargetError(
        f"target.path: {path.name}: unsupported scikit-learn file; use '.skops' "
        "(or '.joblib'/'.pkl' with --trust-pickle)"
    )
