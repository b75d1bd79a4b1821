"""Language-model targets: a causal model that maps token ids to next-token logits.

A `LanguageModel` is not a classifier `Target`: it encodes and decodes text, gives the
log-probabilities of the next token after batches of contexts, and the log-perplexity of whole
sequences. Its capabilities are ``{"sequences"}``, so every classifier audit refuses it at the
preflight check (they need ``"scores"``) and the sequence audits refuse a classifier.

Adapters:

* `TransformersLanguageModel`: a Hugging Face ``transformers`` causal LM and its tokenizer read
  from a local directory (``from_pretrained(path, local_files_only=True)``; never a download).
* `TorchLanguageModel`: a plain torch module mapping ``(batch, time)`` token ids to
  ``(batch, time, vocabulary)`` logits, with a character vocabulary (`CharVocabulary`).

Log-perplexities are in bits, as in the Secret Sharer: ``-sum log2 p(x_i | x_<i)`` over the
tokens after a given prefix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unmeasured.errors import MissingDependencyError, TargetError
from unmeasured.targets.base import first_line

if TYPE_CHECKING:
    import torch

LN2 = float(np.log(2.0))


class LanguageModel(ABC):
    """A causal language model under audit.

    Attributes:
        description: the model in words, for reports.
        files: what it was loaded from (provenance hashes).
        start_ids: tokens put before every context (a start-of-text token), possibly none.
        batch_size: contexts per forward pass.
        input_bounds: always None (inputs are tokens); present so run-level code treats every
            target alike.
    """

    description: str = "language model"
    files: tuple[Path, ...] = ()
    start_ids: tuple[int, ...] = ()
    batch_size: int = 256
    input_bounds: tuple[float, float] | None = None
    module: Any = None

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"sequences"})

    @property
    @abstractmethod
    def vocabulary_size(self) -> int:
        """The number of tokens the model predicts over."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens)."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids."""

    @abstractmethod
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(batch, time, vocabulary)`` for token ids ``(batch, time)``."""

    def symbol_ids(self, alphabet: str) -> list[int] | None:
        """The token of each symbol of ``alphabet`` when every symbol is one token and appending a
        symbol to any text appends exactly its token (character-level vocabularies); else None.
        """
        ids = []
        for symbol in alphabet:
            encoded = self.encode(symbol)
            if len(encoded) != 1:
                return None
            ids.append(encoded[0])
        probe = "ab " + alphabet[::-1] + alphabet
        if self.encode(probe) != self.encode("ab ") + [ids[alphabet.index(c)] for c in probe[3:]]:
            return None
        return ids

    def next_token_log_probs(self, contexts: np.ndarray) -> np.ndarray:
        """Natural-log probabilities of the next token after each context.

        Args:
            contexts: int ``(n, t)`` token ids, all of one length (the `start_ids` are put
                before them here).

        Returns:
            float64 ``(n, vocabulary)``.
        """
        import torch

        contexts = np.asarray(contexts, dtype=np.int64)
        start = np.broadcast_to(
            np.asarray(self.start_ids, dtype=np.int64), (len(contexts), len(self.start_ids))
        )
        full = np.concatenate([start, contexts], axis=1)
        if full.shape[1] == 0:
            raise TargetError(
                f"target: {self.description} has no start token; give a non-empty prefix"
            )
        out = np.empty((len(full), self.vocabulary_size), dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, len(full), self.batch_size):
                batch = torch.from_numpy(full[s : s + self.batch_size])
                last = self.logits(batch)[:, -1, : self.vocabulary_size].double()
                out[s : s + len(batch)] = torch.log_softmax(last, dim=-1).numpy()
        return out

    def continuation_log_probs(
        self, context: Sequence[int], continuations: np.ndarray
    ) -> np.ndarray:
        """Natural-log probabilities of the next token after ``context`` followed by each row
        of ``continuations`` (int ``(n, k)``), float64 ``(n, vocabulary)``.

        Scores every row from its start; an adapter that can keep a context's state (the
        key-value cache of a transformers model) computes the shared ``context`` once.
        """
        continuations = np.asarray(continuations, dtype=np.int64).reshape(len(continuations), -1)
        shared = np.broadcast_to(
            np.asarray(context, dtype=np.int64), (len(continuations), len(context))
        )
        return self.next_token_log_probs(np.concatenate([shared, continuations], axis=1))

    def log_perplexity(self, texts: Sequence[str], *, prefix: str = "") -> np.ndarray:
        """Per-sequence log-perplexity in bits of the tokens of each text after ``prefix``.

        Every text must start with ``prefix``; the prefix's tokens are context, not scored. The
        texts are scored in batches, right-padded (a causal model's earlier positions never see
        the padding).

        Returns:
            float64 ``(len(texts),)``.
        """
        import torch

        context = list(self.start_ids) + (self.encode(prefix) if prefix else [])
        rows = []
        for text in texts:
            if not text.startswith(prefix):
                raise TargetError(f"target: text {text[:40]!r} does not start with {prefix!r}")
            ids = list(self.start_ids) + self.encode(text)
            keep = len(context) if ids[: len(context)] == context else len(self.start_ids)
            rows.append((ids, max(keep, 1)))
        out = np.zeros(len(rows), dtype=np.float64)
        order = np.argsort([len(ids) for ids, _ in rows], kind="stable")
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                chunk = order[s : s + self.batch_size]
                width = max(len(rows[i][0]) for i in chunk)
                ids = np.zeros((len(chunk), width), dtype=np.int64)
                for j, i in enumerate(chunk):
                    ids[j, : len(rows[i][0])] = rows[i][0]
                batch = torch.from_numpy(ids)
                logp = torch.log_softmax(
                    self.logits(batch)[..., : self.vocabulary_size].double(), -1
                )
                # position t predicts token t + 1
                token_logp = logp[:, :-1].gather(2, batch[:, 1:, None])[..., 0].numpy()
                for j, i in enumerate(chunk):
                    n, first = len(rows[i][0]), rows[i][1]
                    out[i] = -token_logp[j, first - 1 : n - 1].sum() / LN2
        return out

    def parameter_count(self) -> int | None:
        """Number of parameters of the torch module, when there is one."""
        if self.module is None:
            return None
        return int(sum(p.numel() for p in self.module.parameters()))


class CharVocabulary:
    """A character vocabulary: token ``i`` is ``symbols[i]``.

    Example:
        >>> v = CharVocabulary("ab\\n")
        >>> v.encode("ba"), v.decode([0, 1])
        ([1, 0], 'ab')
    """

    def __init__(self, symbols: str) -> None:
        if len(set(symbols)) != len(symbols) or not symbols:
            raise TargetError("target.vocabulary: must be distinct characters, at least one")
        self.symbols = symbols
        self._index = {c: i for i, c in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as e:
            raise TargetError(
                f"target.vocabulary: character {e.args[0]!r} is not in the model's vocabulary"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.symbols[int(i)] for i in ids)


class TorchLanguageModel(LanguageModel):
    """A plain torch module ``(batch, time) -> (batch, time, vocabulary)`` logits over a
    character vocabulary.

    Args:
        module: the model (put in eval mode).
        vocabulary: its characters, in token order.
        start: a character put before every context (a start-of-text symbol), or None.
        batch_size: contexts per forward pass.
        device: where the module runs.
        description: text for reports.
        files: what it was loaded from.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        vocabulary: str,
        *,
        start: str | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        description: str | None = None,
        files: Sequence[Path] = (),
    ) -> None:
        import torch

        self.vocabulary = CharVocabulary(vocabulary)
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.start_ids = tuple(self.vocabulary.encode(start)) if start else ()
        self.batch_size = batch_size
        self.description = description or f"torch {type(module).__name__} language model"
        self.files = tuple(Path(f) for f in files)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        return self.vocabulary.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.vocabulary.decode(ids)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.module(ids.to(self.device))
        if out.ndim != 3 or out.shape[:2] != ids.shape or out.shape[2] < self.vocabulary_size:
            raise TargetError(
                f"target: the module returned shape {tuple(out.shape)} for token ids of shape "
                f"{tuple(ids.shape)}, expected (batch, time, {self.vocabulary_size})"
            )
        return out.float().cpu()


class TransformersLanguageModel(LanguageModel):
    """A Hugging Face causal LM and its tokenizer from a local directory (never downloaded).

    Args:
        path: the directory ``save_pretrained`` wrote (``config.json``, weights, tokenizer).
        batch_size: contexts per forward pass.
        device: where the model runs.
        field: the config field named in errors.

    Raises:
        MissingDependencyError: ``transformers`` is not installed (the ``lm`` extra).
        TargetError: not a directory, or no model or tokenizer can be read from it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        field: str = "target.path",
    ) -> None:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingDependencyError(
                f"{field}: reading a transformers model needs the 'transformers' package "
                "(pip install 'unmeasured[lm]')"
            ) from None
        path = Path(path)
        if not path.is_dir():
            raise TargetError(f"{field}: {path}: not a directory (save_pretrained writes one)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # transformers raises OSError, ValueError and its own errors
            raise TargetError(f"{field}: {path.name}: no tokenizer ({first_line(e)})") from None
        try:
            module = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # as above
            raise TargetError(
                f"{field}: {path.name}: no causal language model ({first_line(e)})"
            ) from None
        import torch

        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.batch_size = batch_size
        bos = self.tokenizer.bos_token_id
        self.start_ids = () if bos is None else (int(bos),)
        self.description = f"transformers {type(module).__name__} from {path.name}"
        self.files = tuple(
            sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _HASHED_SUFFIXES)
        )

    @property
    def vocabulary_size(self) -> int:
        return int(self.module.config.vocab_size)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids)))

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.module(input_ids=ids.to(self.device)).logits.float().cpu()

    def continuation_log_probs(
        self, context: Sequence[int], continuations: np.ndarray
    ) -> np.ndarray:
        """As `LanguageModel.continuation_log_probs`, with the start token and ``context`` run
        once and their key-value cache copied to every batch of continuations (a model whose
        cache cannot be repeated over a batch scores whole rows instead)."""
        import copy

        import torch

        continuations = np.asarray(continuations, dtype=np.int64).reshape(len(continuations), -1)
        full = [*self.start_ids, *(int(t) for t in context)]
        if continuations.shape[1] == 0 or not full:
            return super().continuation_log_probs(context, continuations)
        size = self.vocabulary_size
        out = np.empty((len(continuations), size), dtype=np.float64)
        with torch.inference_mode():
            first = self.module(input_ids=torch.tensor([full], device=self.device), use_cache=True)
            cache = first.past_key_values
            if not hasattr(cache, "batch_repeat_interleave"):
                return super().continuation_log_probs(context, continuations)
            for s in range(0, len(continuations), self.batch_size):
                part = torch.from_numpy(continuations[s : s + self.batch_size]).to(self.device)
                batch_cache = copy.deepcopy(cache)
                batch_cache.batch_repeat_interleave(len(part))
                logits = self.module(input_ids=part, past_key_values=batch_cache, use_cache=True)
                last = logits.logits[:, -1, :size].double()
                out[s : s + len(part)] = torch.log_softmax(last, dim=-1).cpu().numpy()
        return out


_HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")


def is_language_model(target: Any) -> bool:
    """Whether ``target`` is a language model (not a classifier)."""
    return isinstance(target, LanguageModel)
