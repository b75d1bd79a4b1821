"""PyTorch targets: an ``nn.Module`` (white-box) or a TorchScript file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unmeasured.errors import TargetError
from unmeasured.targets.base import Target


class TorchTarget(Target):
    """A torch module under audit, always queried in eval mode and without gradients.

    Args:
        module: the model; it is put in eval mode before every query, so dropout and batch
            norm behave as at inference even if the caller left it in training mode.
        num_classes: inferred from one forward pass when not given.
        input_bounds: valid input range, if known (used by robustness audits).
        batch_size: queries are split into batches of this size.
        device: where the module runs (``"cpu"``, ``"cuda"``, ...).
    """

    capabilities = frozenset({"scores", "labels", "whitebox"})
    output = "logits"

    def __init__(
        self,
        module: nn.Module,
        *,
        num_classes: int | None = None,
        input_bounds: tuple[float, float] | None = None,
        batch_size: int = 512,
        device: str = "cpu",
        files: Sequence[Path] = (),
        description: str | None = None,
    ) -> None:
        self.module = module.to(device)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.input_bounds = input_bounds
        self.files = tuple(files)
        self.description = description or f"torch {type(module).__name__}"
        self._num_classes = num_classes

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        if self._num_classes is None:
            raise TargetError(
                "target.num_classes: cannot infer the number of classes before a query; set it"
            )
        return self._num_classes

    def infer_num_classes(self, example: np.ndarray) -> int:
        """Set ``num_classes`` from one forward pass on ``example`` (one or more inputs)."""
        if self._num_classes is None:
            self._num_classes = int(self._forward(np.asarray(example[:1])).shape[1])
        return self._num_classes

    def _tensor(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
        return t.to(self.device, torch.float32)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        self.module.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                try:
                    out = self.module(self._tensor(x[start : start + self.batch_size]))
                except (RuntimeError, ValueError, TypeError) as e:
                    detail = " ".join(str(e).split())[:200]
                    raise TargetError(
                        f"target: the model cannot process inputs of shape {tuple(x.shape[1:])}: "
                        f"{detail}"
                    ) from None
                if out.ndim != 2:
                    raise TargetError(
                        f"target: the model returned shape {tuple(out.shape)}; expected "
                        "(batch, classes) logits"
                    )
                outs.append(out.double().cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, self._num_classes or 0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._forward(np.asarray(x))
        if self._num_classes is None:
            self._num_classes = int(out.shape[1])
        return out

    def features(self, x: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs of named submodules (``module.named_modules()`` names), flattened per record."""
        named = dict(self.module.named_modules())
        for layer in layers:
            if layer not in named:
                names = ", ".join(n for n in named if n) or "none"
                raise TargetError(f"layer '{layer}' not found; the model has: {names}")
        captured: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
        hooks = [
            named[layer].register_forward_hook(
                lambda _m, _i, out, layer=layer: captured[layer].append(
                    out.detach().flatten(1).double().cpu().numpy()
                )
            )
            for layer in layers
        ]
        try:
            self._forward(np.asarray(x))
        finally:
            for h in hooks:
                h.remove()
        return {layer: np.concatenate(parts) for layer, parts in captured.items()}

    def input_gradients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gradients of the cross-entropy loss with respect to the inputs, batch by batch."""
        self.module.eval()
        grads = []
        x = np.asarray(x)
        for start in range(0, len(x), self.batch_size):
            xb = self._tensor(x[start : start + self.batch_size]).requires_grad_(True)
            yb = torch.as_tensor(np.asarray(y[start : start + self.batch_size]), device=self.device)
            loss = nn.functional.cross_entropy(self.module(xb), yb.long(), reduction="sum")
            (g,) = torch.autograd.grad(loss, xb)
            grads.append(g.double().cpu().numpy())
        return np.concatenate(grads)


def load_torchscript(path: Path, **kwargs: object) -> TorchTarget:
    """A TorchScript file as a target (white-box, minus Python-level module names)."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as e:
        raise TargetError(
            f"target.path: {path}: not a TorchScript file ({_first_line(e)})"
        ) from None
    return TorchTarget(module, files=(path,), description=f"TorchScript {path.name}", **kwargs)  # type: ignore[arg-type]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
