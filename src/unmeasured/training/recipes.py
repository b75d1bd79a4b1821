"""Recipes: how to train a model like the target.

A recipe holds hyper-parameters only: stored under their own names as given and checked against
the constraints declared next to the class, so ``repr``, `Recipe.params` and `Recipe.cache_key`
follow from them. It trains one model with `Recipe.fit`.

The cache key (`Recipe.cache_key`) is what keeps cached models from going stale: it covers every
parameter of ``__init__`` (positional or keyword, defaults included, read back from the
instance), any other public attribute the instance holds, the source of every recipe class in
its hierarchy (a user's recipe file and this module alike: editing either retrains), the
training loop's version, the device type and the versions of torch, scikit-learn and numpy.

Torch recipes share one training loop whose randomness is fixed by the seed alone: the
initialisation (``torch.manual_seed(seed)`` while `TorchRecipe.build` runs, in a forked RNG
state so the caller's is untouched) and the batch order (`batch_schedule`). The ensemble trainer
replays the same schedule for K models at once, so a model trained alone and the same model
trained inside an ensemble agree up to floating-point rounding.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import marshal
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unmeasured.entrypoints import load_callable
from unmeasured.errors import ConfigError, InputError, one_of
from unmeasured.params import Constraint, check_params, interval, options
from unmeasured.provenance import sha256_arrays
from unmeasured.training.devices import DEVICE_CONSTRAINT, resolve_device

#: Bumped whenever the stacked training loop (``ensemble.py``) or the batch schedule changes what
#: a seed trains, so that cached outputs of older loops are not reused (this module's own source
#: is hashed into the key).
TRAINING_LOOP_VERSION = 2

#: torch's fused Adam and SGD kernels, on the CPU from torch 2.4 (CUDA has them earlier): one pass
#: over parameters and state instead of several, which is most of the optimiser's cost on stacked
#: models (the first use imports torch._dynamo, about a second, once per process)
_FUSED_OPTIMIZERS = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4)
_FUSED_DEVICE_TYPES = ("cpu", "cuda")


def _positive_ints(*, allow_empty: bool) -> Constraint:
    def check(v: Any) -> bool:
        return (
            isinstance(v, (list, tuple))
            and (allow_empty or len(v) > 0)
            and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in v)
        )

    what = "a list of positive ints" + ("" if allow_empty else " (at least one)")
    return Constraint(check, what)


def _canonical(value: Any) -> Any:
    """A JSON-able form of a parameter value that is equal exactly when the values train the
    same models (lists and tuples alike; estimators by class and parameters, not by their
    truncated ``repr``; arrays by content)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray):
        return {"array": sha256_arrays(value)}
    if hasattr(value, "get_params") and not isinstance(value, type):  # a scikit-learn estimator
        return {
            "class": _qualified(type(value)),
            "params": _canonical(value.get_params(deep=False)),
        }
    if isinstance(value, type) or callable(value):
        return {"callable": _qualified(value)}
    return repr(value)


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _source_digest(cls: type) -> str:
    """sha256 over the source of every recipe class in ``cls``'s hierarchy: the files defining
    them (a user's recipe file and this module), or, for a class defined where there is no file
    (an interactive session), the compiled code of its methods."""
    h = hashlib.sha256()
    for klass in cls.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, Recipe)):
            continue
        h.update(klass.__qualname__.encode())
        try:
            h.update(Path(inspect.getfile(klass)).read_bytes())
        except (OSError, TypeError):
            for name, member in sorted(vars(klass).items()):
                code = getattr(member, "__code__", None)
                if code is not None:
                    h.update(name.encode())
                    h.update(marshal.dumps(code))
    return h.hexdigest()


class Recipe(ABC):
    """How to train a model like the target.

    Subclasses take their hyper-parameters as arguments stored under the same names
    (keyword-only is the convention of the shipped recipes), declare ``constraints`` for them,
    call `validate` at the end of ``__init__``, and implement `fit` and `predict_logits`.
    """

    constraints: ClassVar[dict[str, Constraint]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """The names of ``__init__``'s parameters, positional or keyword (not ``*args`` or
        ``**kwargs``)."""
        named = (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        return [p.name for p in inspect.signature(cls).parameters.values() if p.kind in named]

    def params(self) -> dict[str, Any]:
        """The hyper-parameters, as stored (defaults included).

        Raises:
            ConfigError: a parameter of ``__init__`` that the recipe does not store under its
                own name (then no cache key could be sure to cover it).
        """
        missing = [k for k in self.param_names() if not hasattr(self, k)]
        if missing:
            raise ConfigError(
                f"recipe: {type(self).__name__} must store its parameter '{missing[0]}' as "
                f"self.{missing[0]} (parameters are read back for the cache key)"
            )
        return {k: getattr(self, k) for k in self.param_names()}

    def device_type(self) -> str:
        """The type of device the recipe trains on (``"cpu"`` unless a subclass says)."""
        return "cpu"

    def validate(self) -> None:
        """Check every parameter against its typed signature and declared constraint (a
        string is never read as a number).

        Raises:
            ConfigError: one line naming ``recipe.<parameter>``, the rule and the value.
        """
        try:
            check_params(self, type(self).__name__, self.constraints, self.param_names())
        except ConfigError as e:
            raise ConfigError(f"recipe.{e}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    def cache_key(self) -> str:
        """A stable sha256 of everything that decides what a seed trains: the class and the
        source of its hierarchy, every parameter (positional or keyword, defaults included) and
        other public attribute, the training loop's version, the device type and the versions
        of torch, scikit-learn and numpy.

        The ``device`` setting itself is left out in favour of the device type it resolves to,
        so ``"auto"`` and ``"cpu"`` share models on a machine without a GPU.
        """
        import sklearn

        cls = type(self)
        state = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        state.update(self.params())
        state.pop("device", None)
        blob = json.dumps(
            {
                "recipe": _qualified(cls),
                "source": _source_digest(cls),
                "params": _canonical(state),
                "device": self.device_type(),
                "loop": TRAINING_LOOP_VERSION,
                "torch": torch.__version__,
                "sklearn": sklearn.__version__,
                "numpy": np.__version__,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> Any:
        """Train one model on ``(x, y)`` (labels in ``0..num_classes-1``); return it."""

    @abstractmethod
    def predict_logits(
        self, model: Any, x: np.ndarray, *, num_classes: int | None = None
    ) -> np.ndarray:
        """Logits (or log-probabilities) of a model from `fit`, float32 of shape ``(n, C)``.

        ``num_classes`` fixes ``C`` when the model may have seen fewer classes than exist.
        """


def batch_schedule(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[np.ndarray]:
    """Positions (into a model's own training set of size ``n``) of each minibatch: a fresh
    permutation per epoch, cut into batches of ``batch_size`` (the last one may be smaller).

    The schedule depends on ``(n, batch_size, epochs, seed)`` only, never on other models, so
    a model trains the same way alone and inside any ensemble.
    """
    rng = np.random.default_rng([seed, 7])
    for _ in range(epochs):
        perm = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield perm[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


class TorchRecipe(Recipe):
    """Base of torch recipes: minibatch training with cross-entropy and Adam or SGD, on the
    recipe's ``device`` (``"auto"``: a GPU when there is one).

    Subclasses implement `architecture`; the training loop, the optimiser and the seeding are
    shared (and replayed by the ensemble trainer for many models at once).
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        "epochs": interval(1, 1_000_000, closed="both", kind=int),
        "batch_size": interval(1, 1_000_000_000, closed="both", kind=int),
        "lr": interval(0, math.inf),
        "weight_decay": interval(0, math.inf, closed="left"),
        "optimizer": options("adam", "sgd"),
        "momentum": interval(0, 1, closed="left"),
        "device": DEVICE_CONSTRAINT,
    }

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str
    momentum: float
    #: where to train (a class default, so subclasses written before devices keep working)
    device: str = "auto"

    @abstractmethod
    def architecture(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """The untrained network (called under a fixed seed by `build`)."""

    def torch_device(self) -> torch.device:
        """The device this recipe trains on, here (see `devices.resolve_device`).

        Raises:
            ConfigError: a GPU this machine does not have.
        """
        return resolve_device(self.device)

    def device_type(self) -> str:
        return self.torch_device().type

    def build(self, input_shape: Sequence[int], num_classes: int, seed: int) -> nn.Module:
        """A freshly initialised model (on the CPU); its initialisation depends on ``seed``
        only, wherever it trains afterwards."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.architecture(tuple(input_shape), num_classes)

    def make_optimizer(self, parameters: Any) -> torch.optim.Optimizer:
        """The recipe's optimiser, with torch's fused kernels where this torch and device have
        them (parameters must already be on their device)."""
        parameters = list(parameters)
        fused = (
            True
            if _FUSED_OPTIMIZERS and parameters and parameters[0].device.type in _FUSED_DEVICE_TYPES
            else None
        )
        if self.optimizer == "adam":
            return torch.optim.Adam(
                parameters, lr=self.lr, weight_decay=self.weight_decay, fused=fused
            )
        return torch.optim.SGD(
            parameters,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            fused=fused,
        )

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        num_classes: int,
        seed: int,
        on_step: Callable[[], None] | None = None,
    ) -> nn.Module:
        """Train one model; ``on_step`` (if given) is called after every optimiser step."""
        device = self.torch_device()
        model = self.build(x.shape[1:], num_classes, seed).to(device)
        model.train()
        opt = self.make_optimizer(model.parameters())
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        for batch in batch_schedule(len(xt), self.batch_size, self.epochs, seed):
            idx = torch.from_numpy(batch).to(device)
            opt.zero_grad(set_to_none=True)
            xb, yb = torch.index_select(xt, 0, idx), torch.index_select(yt, 0, idx)
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            if on_step is not None:
                on_step()
        model.eval()
        return model

    def predict_logits(
        self, model: nn.Module, x: np.ndarray, *, num_classes: int | None = None
    ) -> np.ndarray:
        model.eval()
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), 2048):
                chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + 2048], np.float32))
                out.append(model(chunk.to(device)).float().cpu().numpy())
        return np.concatenate(out)


class MLPRecipe(TorchRecipe):
    """A multi-layer perceptron: flattened input, ``Linear → ReLU`` per hidden width, then a
    linear classifier.

    Args:
        hidden: widths of the hidden layers (empty: a linear model).
        epochs, batch_size, lr, weight_decay: the training loop (L2 weight decay).
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        device: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Example:
        >>> MLPRecipe(hidden=(64,), epochs=2)
        MLPRecipe(hidden=(64,), epochs=2, batch_size=128, lr=0.001, weight_decay=0.0, optimizer='adam', momentum=0.9, device='auto')
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        **TorchRecipe.constraints,
        "hidden": _positive_ints(allow_empty=True),
    }

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
        device: str = "auto",
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.momentum = momentum
        self.device = device
        self.validate()

    def architecture(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return _mlp(int(np.prod(input_shape)), self.hidden, num_classes)


def _mlp(width: int, hidden: Sequence[int], num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class LogisticRecipe(TorchRecipe):
    """Multinomial logistic regression (a single linear layer on the flattened input), trained
    by the same loop as the other torch recipes.

    Example:
        >>> LogisticRecipe(epochs=5)
        LogisticRecipe(epochs=5, batch_size=128, lr=0.01, weight_decay=0.0, optimizer='adam', momentum=0.9, device='auto')
    """

    def __init__(
        self,
        *,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        momentum: float = 0.9,
        device: str = "auto",
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.momentum = momentum
        self.device = device
        self.validate()

    def architecture(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return _mlp(int(np.prod(input_shape)), (), num_classes)


class CNNRecipe(TorchRecipe):
    """A small CNN for ``(C, H, W)`` images (e.g. 1x28x28 or 1x8x8): per entry of ``channels`` a
    3x3 convolution with ReLU, followed by 2x2 max-pooling while the image is at least 4 pixels
    wide; then a linear classifier.

    Example:
        >>> CNNRecipe(channels=(8,), epochs=1).build((1, 8, 8), 10, seed=0)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        **TorchRecipe.constraints,
        "channels": _positive_ints(allow_empty=False),
    }

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
        device: str = "auto",
    ) -> None:
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.momentum = momentum
        self.device = device
        self.validate()

    def architecture(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        if len(input_shape) != 3:
            raise ConfigError(
                f"recipe.kind: 'cnn' needs image records of shape (C, H, W); got {input_shape}"
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


#: floor of a class the model never saw, relative to the lowest logit of that row
_UNSEEN_CLASS_MARGIN = 30.0


class SklearnRecipe(Recipe):
    """Clone a scikit-learn classifier and fit it; every ``random_state`` in it (nested ones
    in pipelines too) is set from the seed.

    Logits are ``log(predict_proba)`` (clipped at 1e-30) or the ``decision_function`` (a binary
    one ``d`` as ``[-d/2, d/2]``). A class absent from a model's training subset gets a logit
    30 below the row's lowest.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> SklearnRecipe(estimator=LogisticRegression(C=0.5))
        SklearnRecipe(estimator=LogisticRegression(C=0.5))
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        "estimator": Constraint(
            lambda v: (
                hasattr(v, "get_params")
                and hasattr(v, "fit")
                and (hasattr(v, "predict_proba") or hasattr(v, "decision_function"))
            ),
            "a scikit-learn classifier (get_params, fit and predict_proba or decision_function)",
        ),
    }

    def __init__(self, *, estimator: Any) -> None:
        self.estimator = estimator
        self.validate()

    @classmethod
    def from_target_estimator(cls, estimator: Any) -> SklearnRecipe:
        """A recipe training fresh copies of a (fitted) target estimator: same class, same
        hyper-parameters, none of its fitted state."""
        from sklearn.base import clone

        try:
            unfitted = clone(estimator)
        except TypeError as e:
            raise InputError(f"recipe.estimator: cannot clone the target's model: {e}") from None
        return cls(estimator=unfitted)

    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> Any:
        from sklearn.base import clone

        est = clone(self.estimator)
        seeded = {
            k: seed
            for k in est.get_params(deep=True)
            if k == "random_state" or k.endswith("__random_state")
        }
        est.set_params(**seeded)
        return est.fit(np.asarray(x).reshape(len(x), -1), y)

    def predict_logits(
        self, model: Any, x: np.ndarray, *, num_classes: int | None = None
    ) -> np.ndarray:
        flat = np.asarray(x).reshape(len(x), -1)
        classes = np.asarray(model.classes_)
        width = max(int(classes.max()) + 1, num_classes or 0)
        if hasattr(model, "predict_proba"):
            seen = np.log(np.clip(model.predict_proba(flat), 1e-30, None))
        else:
            d = np.asarray(model.decision_function(flat), dtype=np.float64)
            seen = np.stack([-d / 2, d / 2], axis=1) if d.ndim == 1 else d
        out = np.repeat(seen.min(axis=1, keepdims=True) - _UNSEEN_CLASS_MARGIN, width, axis=1)
        out[:, classes] = seen
        return out.astype(np.float32)


BUILTIN_RECIPES: dict[str, type[TorchRecipe]] = {
    "mlp": MLPRecipe,
    "logistic": LogisticRecipe,
    "cnn": CNNRecipe,
}
RECIPE_KINDS = (*BUILTIN_RECIPES, "char_lm", "sklearn", "python")


def load_recipe(spec: dict[str, Any], base_dir: Path, *, target_estimator: Any = None) -> Recipe:
    """A recipe from a ``[recipe]`` config table.

    * ``kind = "mlp" | "logistic" | "cnn"`` plus that recipe's parameters;
    * ``kind = "char_lm"``: a character language model (`training.language.CharLMRecipe`);
    * ``kind = "sklearn"`` with ``estimator = "sklearn.linear_model.LogisticRegression"`` (a
      class path, ``module.Class`` or ``module:Class``) and its parameters as the other keys; or
      without ``estimator`` to copy the target's own scikit-learn model (``target_estimator``);
    * ``kind = "python"`` with ``entry = "recipe.py:make_recipe"`` (a file relative to
      ``base_dir``, or ``package.module:function``) returning a `Recipe`; the other keys are its
      keyword arguments.

    Raises:
        ConfigError: an unknown kind or parameter (naming ``recipe.<key>`` and the allowed
            values), a value out of range, or a broken entry point.

    Example:
        >>> load_recipe({"kind": "mlp", "hidden": [64], "epochs": 5}, Path("."))
        MLPRecipe(hidden=[64], epochs=5, batch_size=128, lr=0.001, weight_decay=0.0, optimizer='adam', momentum=0.9, device='auto')
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind is None:
        raise ConfigError(f"recipe.kind: required; choose {one_of(RECIPE_KINDS)}")
    if kind == "python":
        return _python_recipe(spec, base_dir)
    if kind == "char_lm":  # a language model (canary audits), not a classifier `Recipe`
        from unmeasured.training.language import load_language_recipe

        return load_language_recipe(spec, base_dir)  # type: ignore[return-value]
    if kind == "sklearn":
        return _sklearn_recipe(spec, base_dir, target_estimator)
    if kind not in BUILTIN_RECIPES:
        raise ConfigError(f"recipe.kind: unknown recipe '{kind}'; choose {one_of(RECIPE_KINDS)}")
    cls = BUILTIN_RECIPES[kind]
    _check_keys(spec, cls.param_names(), f"'{kind}'")
    return cls(**spec)


def _check_keys(spec: dict[str, Any], allowed: Sequence[str], owner: str) -> None:
    for key in spec:
        if key not in allowed:
            raise ConfigError(
                f"recipe.{key}: unknown parameter of {owner}; allowed: {one_of(['kind', *allowed])}"
            )


def _python_recipe(spec: dict[str, Any], base_dir: Path) -> Recipe:
    entry = spec.pop("entry", None)
    if not entry:
        raise ConfigError('recipe.entry: required for kind "python" (e.g. "recipe.py:make_recipe")')
    fn, _ = load_callable(entry, base_dir, field="recipe.entry", error=ConfigError)
    try:
        recipe = fn(**spec)
    except InputError:
        raise
    except Exception as e:  # the user's code raised: their input, not our bug
        raise ConfigError(f"recipe.entry: {entry} raised {type(e).__name__}: {e}") from None
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"recipe.entry: {entry} returned a {type(recipe).__name__}, not a Recipe")
    return recipe


def _sklearn_recipe(spec: dict[str, Any], base_dir: Path, target_estimator: Any) -> Recipe:
    path = spec.pop("estimator", None)
    if path is None:
        if target_estimator is None:
            raise ConfigError(
                'recipe.estimator: required for kind "sklearn" unless the target is a '
                'scikit-learn model (e.g. "sklearn.linear_model.LogisticRegression")'
            )
        if spec:
            _check_keys(spec, [], "'sklearn' copying the target's model")
        return SklearnRecipe.from_target_estimator(target_estimator)
    if not isinstance(path, str):
        raise ConfigError(f"recipe.estimator: must be a class path string, got {path!r}")
    if ":" not in path:
        module, _, name = path.rpartition(".")
        path = f"{module}:{name}"
    cls, _ = load_callable(path, base_dir, field="recipe.estimator", error=ConfigError)
    if not (isinstance(cls, type) and hasattr(cls, "get_params")):
        raise ConfigError(f"recipe.estimator: '{path}' is not a scikit-learn estimator class")
    _check_keys(spec, ["estimator", *cls().get_params(deep=False)], f"'{cls.__name__}'")
    return SklearnRecipe(estimator=cls(**spec))
