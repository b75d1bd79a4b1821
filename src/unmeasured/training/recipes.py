"""Recipes: how to train a model like the target.

A recipe holds hyper-parameters only (keyword-only, stored as given, so ``repr``, ``params`` and
the cache key follow from them) and trains with `fit`. Torch recipes share one training loop
whose randomness is fixed by the seed alone: the initialisation (``torch.manual_seed(seed)``
inside `build`) and the batch schedule (`batch_schedule`). The ensemble trainer reproduces the
same schedule for K models at once, so a model trained alone and the same model trained inside
an ensemble agree.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unmeasured.entrypoints import load_callable
from unmeasured.errors import ConfigError, one_of


class Recipe(ABC):
    """How to train a model like the target."""

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_names()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    def cache_key(self) -> str:
        """A stable hash of what determines the trained models: class, parameters, versions."""
        import sklearn

        blob = json.dumps(
            {
                "recipe": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": {k: repr(v) for k, v in self.params().items()},
                "torch": torch.__version__,
                "sklearn": sklearn.__version__,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> Any:
        """Train one model on ``(x, y)``; return it."""

    @abstractmethod
    def predict_logits(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Logits (or log-probabilities) of a model from `fit`, shape ``(n, C)``, float32."""


def batch_schedule(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """Positions (into a model's own training set of size ``n``) of each minibatch: a fresh
    permutation per epoch, cut into batches of ``batch_size`` (the last one may be smaller)."""
    rng = np.random.default_rng([seed, 7])
    for _ in range(epochs):
        perm = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield perm[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


class TorchRecipe(Recipe):
    """Base of torch recipes: minibatch training with cross-entropy and Adam or SGD."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str
    momentum: float

    def _check(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"recipe.optimizer: must be 'adam' or 'sgd', got {self.optimizer!r}")
        for key in ("epochs", "batch_size"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"recipe.{key}: must be a positive int, got {v!r}")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ConfigError(f"recipe.lr: must be a positive number, got {self.lr!r}")

    @abstractmethod
    def _module(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """The architecture (called under a fixed seed by `build`)."""

    def build(self, input_shape: Sequence[int], num_classes: int, seed: int) -> nn.Module:
        """A freshly initialised model; the initialisation depends on ``seed`` only."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._module(tuple(input_shape), num_classes)

    def make_optimizer(self, parameters: Any) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(
            parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )

    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> nn.Module:
        model = self.build(x.shape[1:], num_classes, seed)
        model.train()
        opt = self.make_optimizer(model.parameters())
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        for batch in batch_schedule(len(xt), self.batch_size, self.epochs, seed):
            idx = torch.from_numpy(batch)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
        model.eval()
        return model

    def predict_logits(self, model: nn.Module, x: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), 2048):
                chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + 2048], np.float32))
                out.append(model(chunk).float().numpy())
        return np.concatenate(out)


def _flat_size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


class MLPRecipe(TorchRecipe):
    """A multi-layer perceptron (flattened input, ReLU hidden layers).

    Example:
        >>> MLPRecipe(hidden=(64,), epochs=2)
        MLPRecipe(hidden=(64,), epochs=2, batch_size=128, lr=0.001, weight_decay=0.0, optimizer='adam', momentum=0.9)
    """

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (256,),
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        self.hidden = tuple(hidden)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.momentum = momentum
        self._check()

    def _module(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten()]
        width = _flat_size(input_shape)
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)


class LogisticRecipe(MLPRecipe):
    """Multinomial logistic regression (an MLP without hidden layers)."""

    def __init__(
        self,
        *,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        super().__init__(
            hidden=(),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            momentum=momentum,
        )


class CNNRecipe(TorchRecipe):
    """A small CNN for ``(C, H, W)`` images (e.g. 1x28x28 or 1x8x8): 3x3 convolutions with ReLU
    and 2x2 max-pooling while the image is at least 4 pixels wide, then a linear classifier."""

    def __init__(
        self,
        *,
        channels: Sequence[int] = (16, 32),
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        momentum: float = 0.9,
    ) -> None:
        self.channels = tuple(channels)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.momentum = momentum
        self._check()

    def _module(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        if len(input_shape) != 3:
            raise ConfigError(
                f"recipe.kind: 'cnn' needs image inputs (C, H, W); the records have shape {input_shape}"
            )
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for out in self.channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 4:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        layers += [nn.Flatten(), nn.Linear(c * h * w, num_classes)]
        return nn.Sequential(*layers)


class SklearnRecipe(Recipe):
    """Clone a scikit-learn estimator and fit it (``random_state`` set from the seed when the
    estimator has one)."""

    def __init__(self, *, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> Any:
        from sklearn.base import clone

        est = clone(self.estimator)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        return est.fit(np.asarray(x).reshape(len(x), -1), y)

    def predict_logits(self, model: Any, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x).reshape(len(x), -1)
        if hasattr(model, "predict_proba"):
            proba = np.zeros((len(x), self._num_classes(model)), dtype=np.float64)
            proba[:, model.classes_] = model.predict_proba(flat)
            return np.log(np.clip(proba, 1e-30, None)).astype(np.float32)
        d = np.asarray(model.decision_function(flat), dtype=np.float32)
        return np.stack([-d / 2, d / 2], axis=1) if d.ndim == 1 else d

    @staticmethod
    def _num_classes(model: Any) -> int:
        return int(np.max(model.classes_)) + 1

    def params(self) -> dict[str, Any]:
        return {"estimator": self.estimator}


BUILTIN_RECIPES: dict[str, type[Recipe]] = {
    "mlp": MLPRecipe,
    "logistic": LogisticRecipe,
    "cnn": CNNRecipe,
}
RECIPE_KINDS = (*BUILTIN_RECIPES, "python")


def load_recipe(spec: dict[str, Any], base_dir: Path) -> Recipe:
    """A recipe from a ``[recipe]`` config table: ``kind`` plus that recipe's parameters, or
    ``kind = "python"`` with ``entry = "recipe.py:make_recipe"`` (a function returning a Recipe;
    other keys are passed to it as keyword arguments).

    Raises:
        ConfigError: unknown kind or parameter (naming ``recipe.<key>``), or a broken entry point.
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind is None:
        raise ConfigError(f"recipe.kind: required; choose {one_of(RECIPE_KINDS)}")
    if kind == "python":
        entry = spec.pop("entry", None)
        if not entry:
            raise ConfigError(
                'recipe.entry: required for kind "python" (e.g. "recipe.py:make_recipe")'
            )
        fn = _entry_point(entry, base_dir)
        try:
            recipe = fn(**spec)
        except TypeError as e:
            raise ConfigError(f"recipe: {entry}: {e}") from None
        if not isinstance(recipe, Recipe):
            raise ConfigError(
                f"recipe.entry: {entry} returned a {type(recipe).__name__}, not a Recipe"
            )
        return recipe
    if kind not in BUILTIN_RECIPES:
        raise ConfigError(f"recipe.kind: unknown recipe '{kind}'; choose {one_of(RECIPE_KINDS)}")
    cls = BUILTIN_RECIPES[kind]
    allowed = cls.param_names()
    for key in spec:
        if key not in allowed:
            raise ConfigError(
                f"recipe.{key}: unknown parameter of '{kind}'; allowed: {one_of(allowed)}"
            )
    return cls(**spec)


def _entry_point(entry: str, base_dir: Path) -> Any:
    fn, _ = load_callable(entry, base_dir, field="recipe.entry", error=ConfigError)
    return fn
