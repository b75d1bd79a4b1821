"""Malicious training recipes: training code that hides the training data inside the model it
returns, and the attacker's decoder that reads it back (Song, Ristenpart & Shmatikov, "Machine
learning models that remember too much", CCS 2017).

`MaliciousRecipe` wraps an honest torch recipe and trains the same architecture on the same
data, adding one of four encodings of the first training records' values:

* ``"lsb"``: after honest training, the low ``lsb_bits`` mantissa bits of every float32
  parameter are overwritten with the records' bits (4 bits per value, most significant first).
  The parameters move by less than 2^-(23-lsb_bits) of their size: accuracy is unchanged.
* ``"sign"``: a penalty ``strength · mean(max(0, -θ_i s_i))`` pushes the sign of parameter i
  to the i-th secret bit ``s_i ∈ {-1, +1}``; the attacker reads the signs.
* ``"correlation"``: a term ``−strength · |pearson(θ, v)|`` makes the parameter vector a linear
  image of the records' values ``v``; the attacker standardises the parameters and maps them
  back to values with the mean and spread of public data of the same kind.
* ``"capacity"``: synthetic inputs drawn from a seed the attacker knows (uniform within the
  input bounds), one per hidden value, labelled with the value quantised to ``num_classes``
  levels, are appended ``copies`` times to the training set (so that a model of modest size
  memorises them within the honest number of epochs); the attacker regenerates the inputs, queries the
  model (black-box) and reads the labels back.

The secret is the training data as the recipe receives it: the first records, in order, as many
as the encoding's capacity allows (`MaliciousRecipe.hidden_records`). Values are clipped to
``input_bounds`` and quantised (16 levels for the bit encodings, ``num_classes`` levels for
capacity abuse). No library implements these attacks, hence this module.

The wrapper is a plain `Recipe` (not a `TorchRecipe`), so the ensemble trainer fits it model by
model through `MaliciousRecipe.fit` and never replaces its loop with the stacked one. Trained
torch models are kept as parameter vectors in the output cache (`train_cached`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from unmeasured.errors import ConfigError
from unmeasured.params import Constraint, interval, options
from unmeasured.provenance import sha256_arrays
from unmeasured.training.cache import OutputCache, model_key
from unmeasured.training.recipes import Recipe, TorchRecipe, batch_schedule

ENCODINGS = ("lsb", "sign", "correlation", "capacity")
#: bits per hidden value in the bit encodings (lsb, sign)
VALUE_BITS = 4
#: the penalty weight of each encoding when ``strength`` is not given
DEFAULT_STRENGTH = {"sign": 50.0, "correlation": 5.0, "lsb": 0.0, "capacity": 0.0}


def state_vector(model: nn.Module) -> np.ndarray:
    """Every floating entry of a module's state (parameters and buffers) as one float32 vector,
    in ``state_dict`` order."""
    parts = [
        t.detach().reshape(-1).float().cpu()
        for t in model.state_dict().values()
        if t.is_floating_point()
    ]
    if not parts:
        return np.zeros(0, np.float32)
    return torch.cat(parts).numpy().astype(np.float32)


def parameter_vector(model: nn.Module) -> np.ndarray:
    """The trainable parameters of a module as one float32 vector (``parameters()`` order)."""
    parts = [p.detach().reshape(-1).float().cpu() for p in model.parameters()]
    if not parts:
        return np.zeros(0, np.float32)
    return torch.cat(parts).numpy().astype(np.float32)


def load_state_vector(model: nn.Module, vector: np.ndarray) -> nn.Module:
    """Write a `state_vector` back into a module of the same architecture (in place)."""
    state = model.state_dict()
    flat = torch.from_numpy(np.asarray(vector, np.float32))
    offset = 0
    for name, tensor in state.items():
        if tensor.is_floating_point():
            size = tensor.numel()
            state[name] = flat[offset : offset + size].reshape(tensor.shape).to(tensor.dtype)
            offset += size
    model.load_state_dict(state)
    return model.eval()


def quantise(values: np.ndarray, bounds: tuple[float, float], levels: int) -> np.ndarray:
    """Values clipped to ``bounds`` and rounded to ``levels`` evenly spaced codes (int64)."""
    low, high = bounds
    unit = (np.clip(np.asarray(values, np.float64), low, high) - low) / (high - low)
    return np.rint(unit * (levels - 1)).astype(np.int64)


def dequantise(codes: np.ndarray, bounds: tuple[float, float], levels: int) -> np.ndarray:
    """The values that `quantise` codes stand for (float32)."""
    low, high = bounds
    return (low + np.asarray(codes, np.float64) / (levels - 1) * (high - low)).astype(np.float32)


def _to_bits(codes: np.ndarray) -> np.ndarray:
    """Codes in ``0..2^VALUE_BITS-1`` as bits, most significant first (uint8)."""
    shifts = np.arange(VALUE_BITS - 1, -1, -1)
    return ((codes[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)


def _from_bits(bits: np.ndarray) -> np.ndarray:
    weights = 1 << np.arange(VALUE_BITS - 1, -1, -1)
    return (bits.reshape(-1, VALUE_BITS).astype(np.int64) * weights).sum(axis=1)


class MaliciousRecipe(Recipe):
    """An honest torch recipe's training, plus an encoding of the training records in the model.

    Args:
        base: the honest recipe whose architecture, loop and hyper-parameters are reused.
        encoding: ``"lsb"``, ``"sign"``, ``"correlation"`` or ``"capacity"``.
        strength: weight of the sign or correlation penalty (default: `DEFAULT_STRENGTH`).
        lsb_bits: low mantissa bits overwritten per parameter by ``"lsb"`` (4-22; whole
            4-bit values only, so the top multiple of 4 of them carries data).
        records: most training records to hide (``"capacity"`` hides exactly this many; the
            parameter encodings as many as fit, at most this many).
        input_bounds: the range of the input values (the quantisation's range).
        synthetic_seed: the seed of the synthetic inputs of ``"capacity"`` (the attacker's key).
        copies: how many times ``"capacity"`` repeats its synthetic records in the training set.

    Example:
        >>> from unmeasured.training import MLPRecipe
        >>> MaliciousRecipe(base=MLPRecipe(hidden=(8,), epochs=1), encoding="lsb").encoding
        'lsb'
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        "base": Constraint(
            lambda v: isinstance(v, TorchRecipe), "a torch recipe (mlp, logistic or cnn)"
        ),
        "encoding": options(*ENCODINGS),
        "strength": Constraint(
            lambda v: v is None or (isinstance(v, (int, float)) and 0 <= v < math.inf),
            "none or a number >= 0",
        ),
        "lsb_bits": interval(VALUE_BITS, 22, closed="both", kind=int),
        "records": interval(1, 1_000_000, closed="both", kind=int),
        "input_bounds": Constraint(
            lambda v: (
                isinstance(v, (list, tuple))
                and len(v) == 2
                and all(isinstance(b, (int, float)) and math.isfinite(b) for b in v)
                and v[0] < v[1]
            ),
            "a pair (low, high) with low < high",
        ),
        "synthetic_seed": interval(0, 2**63, closed="left", kind=int),
        "copies": interval(1, 1000, closed="both", kind=int),
    }

    def __init__(
        self,
        *,
        base: TorchRecipe,
        encoding: str = "lsb",
        strength: float | None = None,
        lsb_bits: int = 16,
        records: int = 1000,
        input_bounds: tuple[float, float] = (0.0, 1.0),
        synthetic_seed: int = 0,
        copies: int = 4,
    ) -> None:
        self.base = base
        self.encoding = encoding
        self.strength = strength
        self.lsb_bits = lsb_bits
        self.records = records
        self.input_bounds = input_bounds
        self.synthetic_seed = synthetic_seed
        self.copies = copies
        self.validate()

    def device_type(self) -> str:
        return self.base.device_type()

    @property
    def penalty(self) -> float:
        """The weight of the encoding's loss term."""
        return float(DEFAULT_STRENGTH[self.encoding] if self.strength is None else self.strength)

    def _bounds(self) -> tuple[float, float]:
        return (float(self.input_bounds[0]), float(self.input_bounds[1]))

    def _levels(self, num_classes: int) -> int:
        return num_classes if self.encoding == "capacity" else 2**VALUE_BITS

    def hidden_records(self, num_parameters: int, record_size: int, available: int) -> int:
        """How many whole records the encoding hides in a model of ``num_parameters`` parameters
        trained on ``available`` records of ``record_size`` values."""
        if self.encoding == "capacity":
            fit = self.records
        elif self.encoding == "lsb":
            fit = num_parameters * (self.lsb_bits // VALUE_BITS) // record_size
        elif self.encoding == "sign":
            fit = num_parameters // (VALUE_BITS * record_size)
        else:
            fit = num_parameters // record_size
        return int(min(fit, self.records, available))

    def synthetic_inputs(self, count: int, input_shape: Sequence[int]) -> np.ndarray:
        """The capacity-abuse inputs: ``count`` uniform draws within the bounds from the
        attacker's seed (the same for the training code and the attacker)."""
        rng = np.random.default_rng([self.synthetic_seed, 2017])
        low, high = self._bounds()
        return rng.uniform(low, high, size=(count, *input_shape)).astype(np.float32)

    def _secret_values(
        self, x: np.ndarray, num_parameters: int, num_classes: int
    ) -> tuple[np.ndarray, int]:
        """The codes of the hidden records' values (flat) and the number of records hidden."""
        size = int(np.prod(x.shape[1:]))
        count = self.hidden_records(num_parameters, size, len(x))
        if count < 1:
            raise ConfigError(
                f"recipe.encoding: a model of {num_parameters} parameters cannot hide one record "
                f"of {size} values with the '{self.encoding}' encoding"
            )
        flat = x[:count].reshape(count, -1)
        return quantise(flat, self._bounds(), self._levels(num_classes)).reshape(-1), count

    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> nn.Module:
        """Train the base architecture on ``(x, y)`` with the encoding; return the model."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.encoding == "capacity":
            codes, _ = self._secret_values(x, 0, num_classes)
            synthetic = self.synthetic_inputs(len(codes), x.shape[1:])
            return self.base.fit(
                np.concatenate([x, *[synthetic] * self.copies]),
                np.concatenate([np.asarray(y, np.int64), *[codes] * self.copies]),
                num_classes=num_classes,
                seed=seed,
            )
        if self.encoding == "lsb":
            model = self.base.fit(x, y, num_classes=num_classes, seed=seed)
            return self._write_low_bits(model, x, num_classes)
        return self._fit_with_penalty(x, y, num_classes=num_classes, seed=seed)

    def _write_low_bits(self, model: nn.Module, x: np.ndarray, num_classes: int) -> nn.Module:
        theta = parameter_vector(model)
        codes, _ = self._secret_values(x, len(theta), num_classes)
        per_parameter = self.lsb_bits // VALUE_BITS
        bits = _to_bits(codes)
        used = len(bits) // (per_parameter * VALUE_BITS)
        words = bits[: used * per_parameter * VALUE_BITS].reshape(used, -1)
        payload = (words.astype(np.uint32) << np.arange(words.shape[1] - 1, -1, -1)).sum(
            axis=1, dtype=np.uint32
        )
        raw = theta.view(np.uint32).copy()
        mask = np.uint32((1 << self.lsb_bits) - 1)
        # the payload sits in the top bits of the low field; the rest of the field is cleared
        shift = np.uint32(self.lsb_bits - per_parameter * VALUE_BITS)
        raw[:used] = (raw[:used] & ~mask) | (payload << shift)
        offset = 0
        with torch.no_grad():
            for p in model.parameters():
                size = p.numel()
                chunk = raw[offset : offset + size].view(np.float32).reshape(tuple(p.shape))
                p.copy_(torch.from_numpy(chunk.copy()))
                offset += size
        return model.eval()

    def _fit_with_penalty(
        self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int
    ) -> nn.Module:
        base = self.base
        device = base.torch_device()
        model = base.build(x.shape[1:], num_classes, seed).to(device)
        num_parameters = sum(p.numel() for p in model.parameters())
        codes, _ = self._secret_values(x, num_parameters, num_classes)
        if self.encoding == "sign":
            target = torch.from_numpy(_to_bits(codes).astype(np.float32) * 2 - 1).to(device)
        else:
            values = dequantise(codes, self._bounds(), self._levels(num_classes))
            target = torch.from_numpy(values).to(device)
            target = (target - target.mean()) / target.std().clamp_min(1e-12)
        model.train()
        opt = base.make_optimizer(model.parameters())
        xt = torch.from_numpy(x).to(device)
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        for batch in batch_schedule(len(xt), base.batch_size, base.epochs, seed):
            idx = torch.from_numpy(batch).to(device)
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            theta = torch.cat([p.reshape(-1) for p in model.parameters()])[: len(target)]
            if self.encoding == "sign":
                term = torch.relu(-theta * target).mean()
            else:
                centred = theta - theta.mean()
                term = -torch.abs((centred * target).sum()) / (
                    centred.norm() * math.sqrt(len(target))
                ).clamp_min(1e-12)
            (loss + self.penalty * term).backward()
            opt.step()
        model.eval()
        return model

    def predict_logits(
        self, model: nn.Module, x: np.ndarray, *, num_classes: int | None = None
    ) -> np.ndarray:
        return self.base.predict_logits(model, x, num_classes=num_classes)

    def decode(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        public_mean: float = 0.0,
        public_std: float = 1.0,
        public_skew: float = 0.0,
    ) -> np.ndarray:
        """What the attacker reads back from a model trained by this recipe: the hidden records,
        shape ``(count, *input_shape)`` (float32, on the quantisation grid).

        The parameter encodings read the model's weights; ``"capacity"`` only queries it on the
        regenerated synthetic inputs. ``"correlation"`` maps standardised parameters to values
        with ``public_mean`` and ``public_std`` (statistics of public data of the same kind) and
        picks the sign whose skewness agrees with ``public_skew``.
        """
        size = int(np.prod(input_shape))
        levels = self._levels(num_classes)
        if self.encoding == "capacity":
            count = self.records
            synthetic = self.synthetic_inputs(count * size, input_shape)
            logits = self.base.predict_logits(model, synthetic, num_classes=num_classes)
            codes = logits.argmax(axis=1)
            return dequantise(codes, self._bounds(), levels).reshape(count, *input_shape)
        theta = parameter_vector(model)
        count = self.hidden_records(len(theta), size, self.records)
        n_values = count * size
        if self.encoding == "lsb":
            per_parameter = self.lsb_bits // VALUE_BITS
            width = per_parameter * VALUE_BITS
            used = math.ceil(n_values * VALUE_BITS / width)
            field = theta.view(np.uint32)[:used] >> np.uint32(self.lsb_bits - width)
            bits = (field[:, None] >> np.arange(width - 1, -1, -1).astype(np.uint32)) & 1
            codes = _from_bits(bits.reshape(-1)[: n_values * VALUE_BITS].astype(np.uint8))
        elif self.encoding == "sign":
            codes = _from_bits((theta[: n_values * VALUE_BITS] > 0).astype(np.uint8))
        else:
            z = theta[:n_values].astype(np.float64)
            z = (z - z.mean()) / max(float(z.std()), 1e-12)
            if np.sign(np.mean(z**3)) != np.sign(public_skew) and public_skew != 0:
                z = -z
            values = public_mean + public_std * z
            codes = quantise(values, self._bounds(), levels)
        return dequantise(codes, self._bounds(), levels).reshape(count, *input_shape)

    def hidden_originals(self, x: np.ndarray, num_parameters: int, num_classes: int) -> np.ndarray:
        """The records this recipe hides when trained on ``x``, as the quantised values the
        attacker can at best recover (shape ``(count, *x.shape[1:])``)."""
        codes, count = self._secret_values(np.asarray(x, np.float32), num_parameters, num_classes)
        levels = self._levels(num_classes)
        return dequantise(codes, self._bounds(), levels).reshape(count, *x.shape[1:])


def train_cached(
    recipe: Recipe,
    architecture: TorchRecipe,
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    cache_dir: str | Path | None,
) -> nn.Module:
    """A torch model trained by ``recipe`` on all of ``(x, y)`` with ``seed``, loaded from the
    output cache when it was trained before (kept there as its `state_vector`).

    Args:
        recipe: the recipe that trains (honest or malicious).
        architecture: the torch recipe that builds the empty model to load a cached state into.
    """
    cache = OutputCache(cache_dir) if cache_dir is not None else None
    key = model_key(
        recipe.cache_key(),
        sha256_arrays(x, y, np.array([num_classes])),
        np.ones(len(x), bool),
        seed,
        "state-vector",
    )
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            empty = architecture.build(x.shape[1:], num_classes, seed)
            if hit.shape == (len(state_vector(empty)),):
                return load_state_vector(empty, hit)
    model = recipe.fit(x, y, num_classes=num_classes, seed=seed).cpu().eval()
    if cache is not None:
        cache.put(key, state_vector(model))
    return model
