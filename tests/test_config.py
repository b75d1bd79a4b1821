from pathlib import Path

import pytest

from unmeasured.config import DEFAULT_AUDITS, load_config
from unmeasured.errors import ConfigError

BASE = """
[target]
kind = "onnx"
path = "m.onnx"
[data]
members = "a.npz"
nonmembers = "b.npz"
"""


def _load(tmp_path: Path, text: str):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return load_config(p)


def test_defaults(tmp_path: Path) -> None:
    loaded = _load(tmp_path, BASE)
    cfg = loaded.config
    assert cfg.seed == 0 and cfg.confidence == 0.95
    assert cfg.audits is None  # the default suite: DEFAULT_AUDITS, skipped where they cannot run
    assert len(DEFAULT_AUDITS) >= 4
    assert loaded.resolve("a.npz") == tmp_path.resolve() / "a.npz"


def test_audit_params_are_extra_keys(tmp_path: Path) -> None:
    cfg = _load(tmp_path, BASE + '[[audits]]\nname = "membership.loss"\nfpr = 0.05\n').config
    assert cfg.audits[0].params == {"fpr": 0.05}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("confidence = 1.5\n" + BASE, "confidence: Input should be less than 1"),
        (BASE.replace('kind = "onnx"', "kind = 3"), "target.kind"),
        (
            BASE.replace('kind = "onnx"', 'kind = "onnx"\ninput_bounds = [1, 0]'),
            "target.input_bounds",
        ),
        (BASE + "[[audits]]\nfpr = 0.1\n", "audits[0].name"),
        (BASE.replace("[data]", "[data]\nlabels = 'y'"), "data.labels"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, text)
    assert field in str(e.value)
    assert "\n" not in str(e.value)
