"""The TOML configuration schema and its validation, with errors that name the field.

Example::

    seed = 0
    [target]
    kind = "torch"                 # torch | torchscript | sklearn | onnx | transformers
    factory = "model.py:build"     # relative to this file
    weights = "model.safetensors"
    [data]                         # every role is optional; each audit says what it needs
    members = "members.npz"        # arrays x, y
    nonmembers = "nonmembers.npz"
    population = "population.npz"
    test = "test.npz"
    [[audits]]
    name = "membership.loss"       # or a whole family: name = "membership"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from unmeasured.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_AUDITS = (
    "membership.loss",
    "membership.confidence",
    "membership.entropy",
    "membership.modified_entropy",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(_Strict):
    """``[target]``: the model under audit."""

    kind: Literal["torch", "torchscript", "sklearn", "onnx", "transformers"]
    factory: str | None = None
    factory_kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    path: str | None = None
    output: Literal["auto", "logits", "probabilities"] = "auto"
    num_classes: int | None = Field(default=None, ge=2)
    batch_size: int = Field(default=512, ge=1)
    device: str = "cpu"
    trusted_types: list[str] = Field(default_factory=list)
    input_bounds: tuple[float, float] | None = None

    @field_validator("input_bounds")
    @classmethod
    def _low_below_high(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"low must be below high, got [{v[0]}, {v[1]}]")
        return v


class DataConfig(_Strict):
    """``[data]``: the records around the model, by role (every role optional; each audit
    states which it needs). Paths are relative to the config file."""

    members: str | None = None
    nonmembers: str | None = None
    population: str | None = None
    test: str | None = None
    train_sample: str | None = None
    label: str = "label"
    x_key: str = "x"
    y_key: str = "y"
    columns: list[str] = Field(default_factory=list)


class AuditEntry(BaseModel):
    """``[[audits]]``: an audit by registry name; every other key is one of its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Config(_Strict):
    """The whole configuration file."""

    seed: int = Field(default=0, ge=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    target: TargetConfig
    data: DataConfig
    recipe: dict[str, Any] | None = None
    audits: list[AuditEntry] | None = None
    fail_on: list[str] = Field(default_factory=list)
    cache_dir: str | None = None


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from (paths in it are relative to ``base_dir``)."""

    config: Config
    path: Path
    text: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: missing file, invalid TOML, or a field that fails validation (one line that
            names the file and the field).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:  # a directory, no permission, a symlink loop, ...
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save the config as UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on older Pythons
        raise ConfigError(f"{path}: cannot resolve the path ({e})") from None
    return LoadedConfig(config=parse_config(raw, source=str(path)), path=resolved, text=text)


def parse_config(raw: dict[str, Any], *, source: str = "config") -> Config:
    """Validate a config dict (as parsed from TOML)."""
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_validation_error(e)}") from None


def format_validation_error(error: ValidationError) -> str:
    """One line for the first problem: the dotted field path and what is wrong with it."""
    first = error.errors()[0]
    loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(
        ".[", "["
    )
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = first["loc"][:-1]
        allowed = _allowed_keys(parent)
        return f"{loc}: unknown key; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return f"{loc}: required field is missing"
    return f"{loc}: {first['msg']} (got {first.get('input')!r})"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            break
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            break
        model = nested[0]
    return sorted(model.model_fields)
