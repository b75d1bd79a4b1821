"""A torch model as a ReLU network: alternating dense affine layers and ReLUs, the form every
certifier in this package reasons about.

`to_relu_network` walks an ``nn.Sequential`` (nested ones included) of ``Linear``, ``Conv2d``,
``Flatten``, ``ReLU``, ``BatchNorm1d``/``BatchNorm2d`` (eval mode), ``Dropout`` (eval mode) and
``Identity``. Every run of affine modules between two ReLUs is composed into one dense matrix
and bias, so batch norm is folded into the layer before it (or after it, when it follows a
ReLU) and ``Flatten`` disappears.

Convolutions become dense matrices. The geometric certifiers (FGP, the MILP) need the dense
rows anyway (one hyperplane per neuron over the input), and CROWN's back-substitution builds
matrices of the same size, so keeping convolution operators would save nothing there. The
price is memory: a ``Conv2d`` on a ``C×H×W`` input costs ``C·H·W × C'·H'·W'`` entries, fine for
MNIST-sized inputs (784 × 6,272 for eight 3×3 filters) and refused with a `TargetError` above
``max_dense_entries``.

Weights are copied in float64 by default: the certifiers compare distances and margins that can
be tiny, and float32 rounding would make a certificate depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from unmeasured.errors import TargetError

#: the modules `to_relu_network` understands
SUPPORTED_LAYERS = (
    "Linear",
    "Conv2d",
    "Flatten",
    "ReLU",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Identity",
)
#: a dense matrix larger than this many entries is refused (8 bytes each in float64)
MAX_DENSE_ENTRIES = 50_000_000


@dataclass(frozen=True)
class ReluNetwork:
    """``f(x) = W_K · relu(... relu(W_1 · x + b_1) ...) + b_K`` on flattened inputs.

    A ReLU follows every layer but the last. Inputs may come flat ``(n, d)`` or in
    ``input_shape``; outputs are logits ``(n, C)``.

    Attributes:
        weights: one ``(out, in)`` matrix per affine layer.
        biases: one ``(out,)`` vector per affine layer.
        input_shape: the shape of one record, as the original module took it.
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    input_shape: tuple[int, ...]

    @property
    def in_features(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """The widths of the ReLU layers, in order."""
        return tuple(int(w.shape[0]) for w in self.weights[:-1])

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as ``(n, in_features)`` in the network's dtype and device.

        Raises:
            TargetError: ``x`` does not hold records of ``in_features`` values.
        """
        flat = x.reshape(len(x), -1) if x.dim() > 1 else x.reshape(1, -1)
        if flat.shape[1] != self.in_features:
            raise TargetError(
                f"x: records of shape {tuple(x.shape[1:])} do not match the network's input "
                f"{self.input_shape} ({self.in_features} values)"
            )
        return flat.to(dtype=self.dtype, device=self.device)

    def pre_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every ReLU layer and, last, the logits; each ``(n, width)``."""
        h = self.flatten(x)
        out = []
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = h @ w.T + b
            out.append(z)
            if k < len(self.weights) - 1:
                h = z.clamp_min(0)
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, C)``."""
        return self.pre_activations(x)[-1]

    def activation_pattern(self, x: torch.Tensor) -> torch.Tensor:
        """Which ReLUs are active (pre-activation > 0) at each record: bool ``(n, Σ widths)``."""
        hidden = self.pre_activations(x)[:-1]
        if not hidden:
            return torch.zeros(len(x), 0, dtype=torch.bool, device=self.device)
        return torch.cat([z > 0 for z in hidden], dim=1)


def to_relu_network(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    max_dense_entries: int = MAX_DENSE_ENTRIES,
) -> ReluNetwork:
    """Turn a feed-forward ReLU model into a `ReluNetwork` that computes the same function.

    Args:
        module: an ``nn.Sequential`` (nesting allowed) or a single supported layer; see
            `SUPPORTED_LAYERS`. Batch norm and dropout must be in eval mode.
        input_shape: the shape of one record without the batch axis, e.g. ``(784,)`` or
            ``(1, 28, 28)``.
        dtype: the dtype of the copied weights.
        max_dense_entries: refuse a layer whose dense matrix would be larger.

    Returns:
        The network; its weights are copies on the module's device.

    Raises:
        TargetError: an unsupported layer (named by its path in the module), a layer in
            training mode, shapes that do not fit, or a dense matrix over the size limit.

    Example:
        >>> net = to_relu_network(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), (4,))
        >>> net.hidden_sizes, net.num_classes
        ((8,), 3)
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise TargetError(f"input_shape: expected positive sizes, got {tuple(input_shape)}")
    device = _device_of(module)
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    # the affine map accumulated since the last ReLU; None stands for the identity
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    for name, layer in _layers(module, ""):
        kind = type(layer).__name__
        if isinstance(layer, nn.ReLU):
            if weight is None or bias is None:
                if weights:
                    continue  # a ReLU right after a ReLU changes nothing
                weight, bias = _identity(_size(shape), dtype, device)  # a ReLU on the input
            weights.append(weight)
            biases.append(bias)
            weight, bias = None, None
            continue
        layer_weight, layer_bias, shape = _affine(layer, name, kind, shape, dtype, device)
        if layer_weight is None or layer_bias is None:
            continue  # a reshape or an identity
        _check_size(layer_weight.shape, name, kind, max_dense_entries)
        if weight is None or bias is None:
            weight, bias = layer_weight, layer_bias
        else:
            _check_size((layer_weight.shape[0], weight.shape[1]), name, kind, max_dense_entries)
            weight, bias = layer_weight @ weight, layer_weight @ bias + layer_bias
    if weight is None or bias is None:
        # the model ends in a ReLU (its outputs are the logits) or has no layer at all
        weight, bias = _identity(_size(shape), dtype, device)
    weights.append(weight)
    biases.append(bias)
    return ReluNetwork(tuple(weights), tuple(biases), tuple(int(s) for s in input_shape))


def _layers(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):
        for child_name, child in module.named_children():
            yield from _layers(child, f"{prefix}.{child_name}" if prefix else child_name)
    else:
        yield prefix or type(module).__name__, module


def _affine(
    layer: nn.Module,
    name: str,
    kind: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple[int, ...]]:
    """The dense ``(out, in)`` matrix and bias of one affine layer on inputs of ``shape``, and the
    output shape; ``(None, None, shape')`` for a layer that only reshapes."""
    where = f"model: layer '{name}' ({kind})"
    if isinstance(layer, nn.Identity):
        return None, None, shape
    if isinstance(layer, nn.Dropout):
        if layer.training:
            raise TargetError(f"{where} is in training mode; call model.eval() first")
        return None, None, shape
    if isinstance(layer, nn.Flatten):
        if layer.start_dim != 1 or layer.end_dim != -1:
            raise TargetError(f"{where}: only Flatten(start_dim=1, end_dim=-1) is supported")
        return None, None, (_size(shape),)
    if isinstance(layer, nn.Linear):
        if shape[-1] != layer.in_features or len(shape) != 1:
            raise TargetError(f"{where} takes {layer.in_features} features, gets shape {shape}")
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features)
        return (
            layer.weight.detach().to(dtype=dtype, device=device).clone(),
            bias.detach().to(dtype=dtype, device=device).clone(),
            (layer.out_features,),
        )
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _batch_norm(layer, where, shape, dtype, device)
    if isinstance(layer, nn.Conv2d):
        return _conv2d(layer, where, shape, dtype, device)
    raise TargetError(
        f"{where} is not supported for certification; supported: {', '.join(SUPPORTED_LAYERS)}"
    )


def _batch_norm(
    layer: nn.BatchNorm1d | nn.BatchNorm2d,
    where: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    if layer.training or layer.running_mean is None or layer.running_var is None:
        raise TargetError(f"{where} must be in eval mode with running statistics")
    expected_dims = 1 if isinstance(layer, nn.BatchNorm1d) else 3
    if len(shape) != expected_dims or shape[0] != layer.num_features:
        raise TargetError(f"{where} has {layer.num_features} channels, gets shape {shape}")
    scale = 1.0 / torch.sqrt(layer.running_var.to(dtype) + layer.eps)
    shift = -layer.running_mean.to(dtype) * scale
    if layer.affine:
        gamma, beta = layer.weight.detach().to(dtype), layer.bias.detach().to(dtype)
        scale, shift = scale * gamma, shift * gamma + beta
    # one scale and shift per channel, repeated over the spatial positions of that channel
    per_value = _size(shape[1:])
    scale = scale.to(device).repeat_interleave(per_value)
    shift = shift.to(device).repeat_interleave(per_value)
    return torch.diag(scale), shift, shape


def _conv2d(
    layer: nn.Conv2d,
    where: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    if len(shape) != 3 or shape[0] != layer.in_channels:
        raise TargetError(f"{where} takes {layer.in_channels} channels, gets shape {shape}")
    if layer.padding_mode != "zeros":
        raise TargetError(f"{where}: only padding_mode='zeros' is supported")
    weight = layer.weight.detach().to(dtype=dtype, device=device)
    in_features = _size(shape)
    out_shape = tuple(
        int(s)
        for s in torch.nn.functional.conv2d(
            torch.zeros(1, *shape, dtype=dtype, device=device),
            weight,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
        ).shape[1:]
    )
    # the convolution of each basis vector is one column of the dense matrix
    columns = []
    for start in range(0, in_features, 1024):
        stop = min(start + 1024, in_features)
        basis = torch.zeros(stop - start, in_features, dtype=dtype, device=device)
        basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        out = torch.nn.functional.conv2d(
            basis.reshape(-1, *shape),
            weight,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
        )
        columns.append(out.reshape(stop - start, -1))
    dense = torch.cat(columns).T.contiguous()
    bias = (
        layer.bias.detach().to(dtype=dtype, device=device)
        if layer.bias is not None
        else torch.zeros(out_shape[0], dtype=dtype, device=device)
    )
    return dense, bias.repeat_interleave(out_shape[1] * out_shape[2]), out_shape


def _check_size(matrix_shape: Sequence[int], name: str, kind: str, limit: int) -> None:
    entries = int(matrix_shape[0]) * int(matrix_shape[1])
    if entries > limit:
        raise TargetError(
            f"model: layer '{name}' ({kind}) needs a dense {matrix_shape[0]} × {matrix_shape[1]} "
            f"matrix, more than max_dense_entries={limit}; certify a smaller input or model"
        )


def _identity(width: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        torch.eye(width, dtype=dtype, device=device),
        torch.zeros(width, dtype=dtype, device=device),
    )


def _device_of(module: nn.Module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


def _size(shape: Sequence[int]) -> int:
    size = 1
    for s in shape:
        size *= int(s)
    return size
