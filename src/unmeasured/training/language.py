"""A character-level language-model recipe: how canary audits retrain a small text model.

`CharLMRecipe` trains a GRU over characters (embedding, GRU, linear head) on the lines of a text
corpus plus any extra lines (planted canaries, each repeated as asked), in plain torch: the
models are small enough that the ensemble trainer's machinery would add nothing. Every line is
read as ``"\\n" + line + "\\n"`` so the newline is both the start and the end of a text, and a
scored context starts with it too (`TorchLanguageModel`'s ``start``).

Trained weights are cached as safetensors under ``<cache_dir>/language/`` keyed by every
parameter, the corpus's content, the extra lines with their repetitions, the seed and the
torch version, so a test module or a sweep trains each model once.

The default corpus is Debian's ``fortunes`` file (package ``fortunes-min``), an offline text
that needs no download.
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unmeasured.errors import ConfigError, DataError, one_of
from unmeasured.params import Constraint, check_params, interval
from unmeasured.targets.language import TorchLanguageModel

#: Debian's fortunes file (package ``fortunes-min``)
FORTUNES = "/usr/share/games/fortunes/fortunes"
#: the characters every model of this recipe knows: printable ASCII and the newline
VOCABULARY = "\n" + "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")
#: bumped when the training loop changes what a seed trains
LOOP_VERSION = 1


class CharGRU(nn.Module):
    """Embedding, GRU, linear head: token ids ``(batch, time)`` to logits ``(batch, time, V)``."""

    def __init__(self, vocabulary_size: int, embedding: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary_size, embedding)
        self.gru = nn.GRU(embedding, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocabulary_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(ids))
        return self.head(out)


class CharLMRecipe:
    """Train a character GRU on a corpus's lines plus extra (planted) lines.

    Args:
        corpus: a text file; blank lines and lines of ``%`` alone (the fortune separators)
            are skipped.
        max_lines: the first this many corpus lines are used.
        max_line_length: longer lines are cut.
        embedding: character embedding width.
        hidden: GRU width.
        layers: GRU layers.
        epochs: passes over the training lines.
        batch_size: lines per step.
        lr: Adam's learning rate.
    """

    constraints: ClassVar[dict[str, Constraint]] = {
        "max_lines": interval(1, math.inf, closed="left", kind=int),
        "max_line_length": interval(8, math.inf, closed="left", kind=int),
        "embedding": interval(1, math.inf, closed="left", kind=int),
        "hidden": interval(1, math.inf, closed="left", kind=int),
        "layers": interval(1, 8, closed="both", kind=int),
        "epochs": interval(1, math.inf, closed="left", kind=int),
        "batch_size": interval(1, math.inf, closed="left", kind=int),
        "lr": interval(0.0, math.inf),
    }

    def __init__(
        self,
        *,
        corpus: str = FORTUNES,
        max_lines: int = 1000,
        max_line_length: int = 80,
        embedding: int = 32,
        hidden: int = 128,
        layers: int = 1,
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 0.005,
    ) -> None:
        self.corpus = corpus
        self.max_lines = max_lines
        self.max_line_length = max_line_length
        self.embedding = embedding
        self.hidden = hidden
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        try:
            check_params(self, "char_lm", self.constraints)
        except ConfigError as e:
            raise ConfigError(f"recipe.{e}") from None

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _PARAMS}

    def __repr__(self) -> str:
        return f"CharLMRecipe({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

    def lines(self) -> list[str]:
        """The corpus lines the recipe trains on.

        Raises:
            DataError: the corpus file is missing or unreadable (naming ``recipe.corpus``).
        """
        path = Path(self.corpus).expanduser()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise DataError(f"recipe.corpus: {self.corpus}: {e.strerror or e}") from None
        known = set(VOCABULARY)
        lines = []
        for raw in text.splitlines():
            line = "".join(c for c in raw.strip() if c in known)[: self.max_line_length]
            if line and line != "%":
                lines.append(line)
            if len(lines) == self.max_lines:
                break
        if not lines:
            raise DataError(f"recipe.corpus: {self.corpus}: no text lines")
        return lines

    def cache_key(self, extra: Sequence[tuple[str, int]], seed: int) -> str:
        """sha256 of the parameters, the corpus's content, the extra lines and their
        repetitions, the seed, the loop's version and torch's version."""
        corpus = hashlib.sha256("\n".join(self.lines()).encode()).hexdigest()
        blob = json.dumps(
            {
                "params": self.params(),
                "corpus": corpus,
                "extra": [[t, int(r)] for t, r in extra],
                "seed": int(seed),
                "loop": LOOP_VERSION,
                "torch": torch.__version__,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def build(self, seed: int) -> CharGRU:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return CharGRU(len(VOCABULARY), self.embedding, self.hidden, self.layers)

    def train(
        self,
        extra: Sequence[tuple[str, int]] = (),
        *,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> TorchLanguageModel:
        """A model trained on the corpus plus each ``(line, repetitions)`` of ``extra``.

        Args:
            extra: lines to add, each as many times as given (0 leaves it out).
            seed: decides the initialisation and the order of the lines.
            cache_dir: where trained weights are kept (None: not cached).

        Returns:
            The trained model as a `TorchLanguageModel` (start symbol: the newline).
        """
        from safetensors.torch import load_file, save_file

        model = self.build(seed)
        path = None
        if cache_dir is not None:
            key = self.cache_key(extra, seed)
            path = Path(cache_dir) / "language" / key[:2] / f"{key}.safetensors"
        if path is not None and path.is_file():
            model.load_state_dict(load_file(str(path)))
        else:
            lines = self.lines() + [t for t, r in extra for _ in range(int(r))]
            self._fit(model, lines, seed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
                tmp.replace(path)
        return TorchLanguageModel(
            model, VOCABULARY, start="\n", description=f"character GRU ({self.hidden} units)"
        )

    def _fit(self, model: CharGRU, lines: list[str], seed: int) -> None:
        index = {c: i for i, c in enumerate(VOCABULARY)}
        encoded = [[index[c] for c in "\n" + line + "\n" if c in index] for line in lines]
        rng = np.random.default_rng(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        model.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(encoded))
            for start in range(0, len(order), self.batch_size):
                batch = [encoded[i] for i in order[start : start + self.batch_size]]
                width = max(len(b) for b in batch)
                ids = torch.full((len(batch), width), -100, dtype=torch.long)
                for j, b in enumerate(batch):
                    ids[j, : len(b)] = torch.tensor(b)
                inputs = ids[:, :-1].clamp(min=0)
                logits = model(inputs)
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=-100
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()


_PARAMS = (
    "corpus",
    "max_lines",
    "max_line_length",
    "embedding",
    "hidden",
    "layers",
    "epochs",
    "batch_size",
    "lr",
)


def load_language_recipe(spec: dict[str, Any], base_dir: Path) -> CharLMRecipe:
    """A `CharLMRecipe` from a ``[recipe]`` table with ``kind = "char_lm"`` (``corpus``
    relative to ``base_dir``).

    Raises:
        ConfigError: an unknown parameter (the message lists the allowed ones) or a bad value.
    """
    spec = {k: v for k, v in spec.items() if k != "kind"}
    for key in spec:
        if key not in _PARAMS:
            raise ConfigError(
                f"recipe.{key}: unknown parameter of 'char_lm'; allowed: "
                f"{one_of(['kind', *_PARAMS])}"
            )
    if isinstance(spec.get("corpus"), str):
        corpus = Path(spec["corpus"]).expanduser()
        spec["corpus"] = str(corpus if corpus.is_absolute() else base_dir / corpus)
    return CharLMRecipe(**spec)
