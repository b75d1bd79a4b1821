"""PyTorch targets: an ``nn.Module`` (white-box) or a TorchScript file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unmeasured.errors import CapabilityError, TargetError
from unmeasured.targets.base import (
    Target,
    UnsupportedModelError,
    check_output_kind,
    check_positive,
    first_line,
    predict_in_batches,
)

ArrayLike = np.ndarray | torch.Tensor
MAX_LISTED_LAYERS = 30


class TorchTarget(Target):
    """A torch module under audit, always queried in eval mode.

    Inputs may be NumPy arrays or tensors; each batch is moved to ``device`` and cast to the
    module's floating dtype (float32 for most models). `predict` runs without autograd and
    returns float64 NumPy; `logits` is the differentiable, tensor-in tensor-out path for
    white-box attacks that iterate on the device.

    Args:
        module: the model; it is put in eval mode before every query, so dropout and batch
            norm behave as at inference even if the caller switched it back to training mode.
            It is moved to ``device`` in place.
        num_classes: inferred from the first query (see `infer_num_classes`) when not given.
        output: ``"logits"`` (default) or ``"probabilities"`` for a model ending in a softmax.
        input_bounds: valid input range ``(low, high)``, if known (used by robustness audits).
        batch_size: queries are split into batches of this size.
        device: where the module runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        files: the files the module was built from, for provenance.
        description: text for reports; default ``"torch <class name>"``.

    Raises:
        TargetError: a bad argument or a device the module cannot move to.

    Example:
        >>> from torch import nn
        >>> target = TorchTarget(nn.Linear(4, 3))
        >>> target.predict(np.zeros((5, 4), np.float32)).shape
        (5, 3)
    """

    white_box = frozenset({"gradients", "weights", "layers"})

    @property
    def capabilities(self) -> frozenset[str]:
        has_bn = any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
            for m in self.module.modules()
        )
        return super().capabilities | ({"batchnorm"} if has_bn else set())

    def __init__(
        self,
        module: nn.Module,
        *,
        num_classes: int | None = None,
        output: str = "logits",
        input_bounds: tuple[float, float] | None = None,
        batch_size: int = 512,
        device: str | torch.device = "cpu",
        files: Sequence[Path] = (),
        description: str | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise UnsupportedModelError(
                f"target: expected a torch nn.Module, got a {type(module).__name__}"
            )
        check_positive(num_classes, "target.num_classes")
        check_positive(batch_size, "target.batch_size")
        self.output = check_output_kind(output)
        self.input_bounds = _check_bounds(input_bounds)
        try:
            self.device = torch.device(device)
            self.module = module.to(self.device)
        except (RuntimeError, AssertionError) as e:  # torch raises AssertionError without CUDA
            raise TargetError(
                f"target.device: cannot run the model on {str(device)!r} ({first_line(e)})"
            ) from None
        self.module.eval()
        self.batch_size = batch_size
        self.files = tuple(Path(f) for f in files)
        self.description = description or f"torch {type(module).__name__}"
        self._num_classes = num_classes
        self._dtype = next(
            (p.dtype for p in (*module.parameters(), *module.buffers()) if p.is_floating_point()),
            torch.float32,
        )

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        if self._num_classes is None:
            raise TargetError(
                "target.num_classes: unknown until the model has been queried once; set it, "
                "or call infer_num_classes(x) first"
            )
        return self._num_classes

    def infer_num_classes(self, example: ArrayLike) -> int:
        """Set ``num_classes`` from one forward pass on the first input of ``example``."""
        if self._num_classes is None:
            self.predict(example[:1])
        return self.num_classes

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Logits (or probabilities, per `output`) for ``x``, float64 ``(n, num_classes)``.

        Raises:
            TargetError: the model cannot process inputs of this shape, or answers with a
                shape other than ``(batch, num_classes)``.
        """
        self.module.eval()
        with torch.inference_mode():
            out = predict_in_batches(
                lambda batch: self._call(self._tensor(batch)).double().cpu().numpy(),
                x,
                self.batch_size,
                self._num_classes,
            )
        if self._num_classes is None and len(out):
            self._num_classes = int(out.shape[1])
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output on one batch, in eval mode, on `device`, differentiable.

        No batching and no conversion to NumPy: this is the loop body of gradient attacks.
        """
        self.module.eval()
        return self._call(self._tensor(x))

    def features(self, x: ArrayLike, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs of named submodules on ``x``, each flattened to ``(n, features)`` float64.

        Args:
            x: inputs, shape ``(n, *input_shape)``.
            layers: names from ``module.named_modules()`` (``""`` is the whole model).

        Raises:
            TargetError: an unknown layer (the message lists the model's layers), or a layer
                whose output is not one tensor per input.
        """
        named = dict(self.module.named_modules())
        wanted = list(dict.fromkeys(layers))
        unknown = [layer for layer in wanted if layer not in named]
        if unknown:
            raise TargetError(
                f"features: no layer {unknown[0]!r} in {type(self.module).__name__}; "
                f"choose from {_list_names(named)}"
            )
        captured: dict[str, list[np.ndarray]] = {layer: [] for layer in wanted}

        def recorder(layer: str) -> Callable[[nn.Module, Any, Any], None]:
            def record(_module: nn.Module, _inputs: Any, out: Any) -> None:
                if not isinstance(out, torch.Tensor):
                    raise TargetError(
                        f"features: layer {layer!r} returns a {type(out).__name__}, not a "
                        "tensor; choose a layer with a single tensor output"
                    )
                captured[layer].append(out.detach().flatten(1).double().cpu().numpy())

            return record

        hooks = [named[layer].register_forward_hook(recorder(layer)) for layer in wanted]
        try:
            n = len(self.predict(x))
        finally:
            for hook in hooks:
                hook.remove()
        result = {}
        for layer, parts in captured.items():
            if sum(len(p) for p in parts) != n or len({p.shape[1] for p in parts}) > 1:
                raise TargetError(
                    f"features: layer {layer!r} runs more than once per forward pass (a shared "
                    "layer); choose a layer that runs once"
                )
            result[layer] = np.concatenate(parts) if parts else np.zeros((0, 0))
        return result

    def input_gradients(self, x: ArrayLike, y: ArrayLike) -> np.ndarray:
        """Gradient of each input's cross-entropy loss with respect to that input.

        The loss is ``-log p(y | x)`` from the model's logits (or probabilities, per `output`),
        summed over the batch, so row ``i`` is the gradient of record ``i``'s own loss whatever
        the batch size.

        Args:
            x: inputs, shape ``(n, *input_shape)``.
            y: labels in ``0..num_classes-1``, shape ``(n,)``.

        Returns:
            float64 array shaped like ``x``.

        Raises:
            TargetError: ``x`` and ``y`` of different lengths, or labels out of range.
        """
        labels = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        if labels.shape != (len(x),):
            raise TargetError(
                f"input_gradients: y has shape {tuple(labels.shape)}, expected ({len(x)},)"
            )
        grads = []
        with torch.enable_grad():  # even when the caller is inside torch.no_grad()
            for start in range(0, len(x), self.batch_size):
                xb = self._tensor(x[start : start + self.batch_size]).detach().requires_grad_()
                out = self.logits(xb)
                yb = labels[start : start + self.batch_size].to(self.device, torch.long)
                if len(yb) and (int(yb.min()) < 0 or int(yb.max()) >= out.shape[1]):
                    raise TargetError(
                        f"input_gradients: labels must be 0..{out.shape[1] - 1}, got "
                        f"{int(yb.min())}..{int(yb.max())}"
                    )
                if self.output == "logits":
                    log_probs = out.log_softmax(dim=1)
                else:
                    p = out.clamp_min(1e-30)
                    log_probs = (p / p.sum(dim=1, keepdim=True)).log()
                loss = nn.functional.nll_loss(log_probs, yb, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xb)
                grads.append(grad.double().cpu().numpy())
        return np.concatenate(grads) if grads else np.zeros((0, *np.shape(x)[1:]))

    def _tensor(self, x: ArrayLike) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x.to(self.device, self._dtype)
        try:
            return torch.tensor(np.asarray(x), dtype=self._dtype, device=self.device)
        except (TypeError, ValueError) as e:
            raise TargetError(
                f"target: cannot turn inputs of dtype {np.asarray(x).dtype} into a tensor "
                f"({first_line(e)})"
            ) from None

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.module(x)
        except TargetError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            raise TargetError(
                f"target: the model cannot process inputs of shape {tuple(x.shape[1:])}: "
                f"{' '.join(str(e).split())[:200]}"
            ) from None
        if not isinstance(out, torch.Tensor):
            raise TargetError(
                f"target: the model returned a {type(out).__name__}, not a tensor of "
                "(batch, classes) scores; wrap it in a module that returns the logits"
            )
        return out


class TorchScriptTarget(TorchTarget):
    """A TorchScript model (``torch.jit.save``): white-box, except that TorchScript modules take
    no forward hooks, so `features` is unavailable.

    Args:
        source: the file to ``torch.jit.load``, or an already loaded ``ScriptModule``.
        **kwargs: as for `TorchTarget`.

    Raises:
        TargetError: the file is missing or not TorchScript.
    """

    white_box = frozenset({"gradients", "weights"})

    def __init__(self, source: str | Path | torch.jit.ScriptModule, **kwargs: Any) -> None:
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                raise TargetError(f"target.path: {path}: no such file")
            try:
                # Load on the CPU: TorchTarget moves it and gives a clear error for a bad device.
                module = torch.jit.load(str(path), map_location="cpu")
            except (RuntimeError, ValueError) as e:
                raise TargetError(
                    f"target.path: {path.name}: not a TorchScript file ({first_line(e)})"
                ) from None
            kwargs.setdefault("files", (path,))
            kwargs.setdefault("description", f"TorchScript {path.name}")
        else:
            module = source
            kwargs.setdefault("description", f"TorchScript {type(source).__name__}")
        super().__init__(module, **kwargs)

    def features(self, x: ArrayLike, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Not available: raises `CapabilityError`."""
        raise CapabilityError(
            "features: TorchScript models take no forward hooks, so layer outputs cannot be "
            "read; load the model with kind 'torch' (a factory and weights) instead"
        )


def _check_bounds(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise TargetError(
            f"target.input_bounds: must be (low, high) numbers, got {bounds!r}"
        ) from None
    if not low < high:
        raise TargetError(f"target.input_bounds: low must be below high, got ({low}, {high})")
    return low, high


def _list_names(named: dict[str, nn.Module]) -> str:
    names = [repr(n) for n in named if n]
    shown = ", ".join(names[:MAX_LISTED_LAYERS]) or "no named layers"
    hidden = len(names) - MAX_LISTED_LAYERS
    return shown + (f" and {hidden} more (see module.named_modules())" if hidden > 0 else "")
