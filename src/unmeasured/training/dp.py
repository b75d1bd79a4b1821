"""DP-SGD through Opacus: a recipe that trains its base torch recipe's network with per-example
gradient clipping and Gaussian noise, and says what privacy its accountant grants.

`DPRecipe` wraps a `TorchRecipe` (the architecture, epochs, batch size, optimiser and learning
rate come from it) and trains with ``opacus.PrivacyEngine``: Poisson sampling at rate
``q = 1 / ceil(n / batch_size)`` for ``epochs · ceil(n / batch_size)`` steps, each example's
gradient clipped to ``max_grad_norm``, noise of standard deviation
``noise_multiplier · max_grad_norm``. Either the noise multiplier is given, or a target ε from
which Opacus derives it (`opacus.accountants.utils.get_noise_multiplier`) for the run's ``n``.

The accountant's guarantee is a pure function of ``(noise multiplier, q, steps, δ)``, so
`DPRecipe.privacy` states it for a training set of ``n`` records without training, and `fit`
checks after training that Opacus's own accountant agrees with it and stores it on the model
(``model.privacy``). The recipe is not a `TorchRecipe` itself: the ensemble trainer therefore
never stacks it (stacked training would skip clipping and noise) and trains one model at a time
through `fit`; its outputs are cached like any other recipe's, under a key that covers the
base recipe's own key.

All randomness (initialisation, Poisson batches, noise) comes from torch's generator seeded by
the model's seed inside a forked RNG state, so a seed trains the same model every time; this is
not Opacus's ``secure_mode`` (a cryptographic generator), which a reproducible audit cannot use.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unmeasured.errors import ConfigError, MissingDependencyError
from unmeasured.params import Constraint, interval, options
from unmeasured.training.recipes import Recipe, TorchRecipe

ACCOUNTANTS = ("prv", "rdp")


@dataclass(frozen=True)
class PrivacySpent:
    """What the accountant grants one model trained by a `DPRecipe`.

    Attributes:
        epsilon: the accountant's ε at ``delta`` after all steps.
        delta: the δ of the guarantee.
        noise_multiplier: the noise's standard deviation over the clipping norm.
        sample_rate: the Poisson sampling rate of a batch.
        steps: the number of noisy optimiser steps.
        accountant: ``"prv"`` or ``"rdp"``.
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "accountant": self.accountant,
        }


@functools.lru_cache(maxsize=256)
def _privacy_spent(
    noise_multiplier: float | None,
    target_epsilon: float | None,
    delta: float,
    rate: float,
    steps: int,
    accountant: str,
) -> PrivacySpent:
    """The accountant's guarantee (memoised: Opacus's RDP and PRV computations take a good
    fraction of a second each, and finding the noise for a target ε takes a dozen of them)."""
    _opacus()
    from opacus.accountants import create_accountant
    from opacus.accountants.utils import get_noise_multiplier

    sigma = noise_multiplier
    if sigma is None:
        try:
            sigma = get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=rate,
                steps=steps,
                accountant=accountant,
            )
        except ValueError as e:
            raise ConfigError(f"recipe.target_epsilon: {e}") from None
    spent = create_accountant(mechanism=accountant)
    spent.history = [(float(sigma), rate, steps)]
    epsilon = float(spent.get_epsilon(delta=delta))
    return PrivacySpent(epsilon, delta, float(sigma), rate, steps, accountant)


def _opacus() -> Any:
    try:
        import opacus
    except ImportError:
        raise MissingDependencyError(
            "recipe: DP-SGD needs Opacus; install it with pip install 'unmeasured[dp]'"
        ) from None
    return opacus


class DPRecipe(Recipe):
    """Train the base recipe's network with DP-SGD (Opacus).

    Args:
        base: the torch recipe whose network and training loop are made private.
        noise_multiplier: the noise's standard deviation over ``max_grad_norm``; give this or
            ``target_epsilon``.
        target_epsilon: the ε to reach at ``delta`` after training (the noise multiplier is
            derived for the training set's size).
        delta: the δ of the guarantee (keep it below 1/n).
        max_grad_norm: the clipping norm of each example's gradient.
        accountant: ``"rdp"`` (Rényi DP, fast) or ``"prv"`` (privacy random variables: tighter, seconds slower).

    Example:
        >>> from unmeasured.training import MLPRecipe
        >>> dp = DPRecipe(base=MLPRecipe(hidden=(16,), epochs=2, batch_size=50), noise_multiplier=1.0)
        >>> round(dp.privacy(500).epsilon, 2) > 0, dp.privacy(500).steps
        (True, 20)
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        "base": Constraint(lambda v: isinstance(v, TorchRecipe), "a torch recipe"),
        "noise_multiplier": Constraint(
            lambda v: (
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)
            ),
            "a float in the range (0, inf) or none",
        ),
        "target_epsilon": Constraint(
            lambda v: (
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)
            ),
            "a float in the range (0, inf) or none",
        ),
        "delta": interval(0, 1),
        "max_grad_norm": interval(0, math.inf),
        "accountant": options(*ACCOUNTANTS),
    }

    def __init__(
        self,
        *,
        base: TorchRecipe,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        delta: float = 1e-5,
        max_grad_norm: float = 1.0,
        accountant: str = "rdp",
    ) -> None:
        self.base = base
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        self.validate()
        if (noise_multiplier is None) == (target_epsilon is None):
            raise ConfigError(
                "recipe.noise_multiplier: give exactly one of noise_multiplier and target_epsilon"
            )

    def device_type(self) -> str:
        return self.base.device_type()

    def cache_key(self) -> str:
        """This recipe's key combined with its base recipe's (which covers the base class's
        source and every parameter of it)."""
        own = super().cache_key()
        return hashlib.sha256(f"{own}/{self.base.cache_key()}".encode()).hexdigest()

    def schedule(self, n: int) -> tuple[float, int]:
        """The Poisson sampling rate and the number of steps for ``n`` training records."""
        batches = math.ceil(n / self.base.batch_size)
        return 1.0 / batches, self.base.epochs * batches

    def privacy(self, n: int) -> PrivacySpent:
        """The accountant's guarantee for a model trained on ``n`` records.

        Raises:
            ConfigError: ``delta`` not below 1/n, or a target ε too small to reach.
        """
        if self.delta >= 1 / n:
            raise ConfigError(
                f"recipe.delta: {self.delta:g} is not below 1/n = {1 / n:.3g} for {n} training "
                "records; a δ that large allows releasing a record outright"
            )
        rate, steps = self.schedule(n)
        return _privacy_spent(
            self.noise_multiplier, self.target_epsilon, self.delta, rate, steps, self.accountant
        )

    def fit(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> nn.Module:
        """Train one model with DP-SGD; the accountant's guarantee is ``model.privacy``.

        Raises:
            ConfigError: a network Opacus cannot make private (batch norm, say), or a δ or
                target ε that does not fit the training set.
        """
        _opacus()
        from opacus import PrivacyEngine
        from opacus.validators import ModuleValidator

        spent = self.privacy(len(x))
        base = self.base
        device = base.torch_device()
        with (
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
            warnings.catch_warnings(),
        ):
            # said in the module docstring: reproducible noise, not secure_mode's generator;
            # and torch's note that the inputs need no gradient (they do not)
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            torch.manual_seed(seed)
            model = base.architecture(tuple(x.shape[1:]), num_classes)
            problems = ModuleValidator.validate(model, strict=False)
            if problems:
                raise ConfigError(
                    f"recipe.base: Opacus cannot train this network privately: {problems[0]}"
                )
            model = model.to(device)
            model.train()
            if base.optimizer == "adam":
                opt: torch.optim.Optimizer = torch.optim.Adam(
                    model.parameters(), lr=base.lr, weight_decay=base.weight_decay
                )
            else:
                opt = torch.optim.SGD(
                    model.parameters(),
                    lr=base.lr,
                    momentum=base.momentum,
                    weight_decay=base.weight_decay,
                )
            data = torch.utils.data.TensorDataset(
                torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                torch.from_numpy(np.asarray(y, dtype=np.int64)),
            )
            loader = torch.utils.data.DataLoader(data, batch_size=base.batch_size)
            engine = PrivacyEngine(accountant=self.accountant)
            private, opt, loader = engine.make_private(
                module=model,
                optimizer=opt,
                data_loader=loader,
                noise_multiplier=spent.noise_multiplier,
                max_grad_norm=self.max_grad_norm,
                poisson_sampling=True,
            )
            for _ in range(base.epochs):
                for xb, yb in loader:
                    opt.zero_grad(set_to_none=True)
                    if len(xb):  # an empty Poisson batch still takes its (noise-only) step
                        loss = nn.functional.cross_entropy(private(xb.to(device)), yb.to(device))
                        loss.backward()
                    opt.step()
        recorded = float(engine.accountant.get_epsilon(delta=self.delta))
        if not math.isclose(recorded, spent.epsilon, rel_tol=1e-6, abs_tol=1e-9):
            raise RuntimeError(  # our bug: the stated guarantee would not be the one trained
                f"DP-SGD accounting mismatch: Opacus recorded ε={recorded}, stated {spent.epsilon}"
            )
        model = private._module
        model.eval()
        model.privacy = spent  # type: ignore[assignment]
        return model

    def predict_logits(
        self, model: nn.Module, x: np.ndarray, *, num_classes: int | None = None
    ) -> np.ndarray:
        return self.base.predict_logits(model, x, num_classes=num_classes)
