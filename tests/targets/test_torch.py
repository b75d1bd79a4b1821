"""Torch targets answer what the module answers, in eval mode, in batches; white-box extras
match torch's own autograd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unmeasured.errors import CapabilityError, TargetError
from unmeasured.targets import TorchScriptTarget, TorchTarget, UnsupportedModelError

from .conftest import eval_logits

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")


def test_predict_matches_the_module_for_numpy_and_tensor_inputs(mlp: nn.Module, x) -> None:
    expected = eval_logits(mlp, x)
    target = TorchTarget(mlp)
    np.testing.assert_allclose(target.predict(x), expected, rtol=1e-6)
    np.testing.assert_allclose(target.predict(torch.from_numpy(x)), expected, rtol=1e-6)
    np.testing.assert_allclose(target.predict(x.astype(np.float64)), expected, rtol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 5, 23, 1000])
def test_batching_equals_one_batch(mlp: nn.Module, x, batch_size: int) -> None:
    expected = eval_logits(mlp, x)
    np.testing.assert_allclose(
        TorchTarget(mlp, batch_size=batch_size).predict(x), expected, rtol=1e-6, atol=1e-6
    )


def test_eval_mode_is_enforced_even_if_the_caller_switches_back(mlp: nn.Module, x) -> None:
    mlp.train()
    target = TorchTarget(mlp)
    first = target.predict(x)
    mlp.train()  # the caller trains again between queries
    np.testing.assert_array_equal(target.predict(x), first)
    np.testing.assert_allclose(first, eval_logits(mlp, x), rtol=1e-6)


def test_batch_norm_statistics_are_left_alone(x) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = TorchTarget(model)
    target.predict(x * 10 + 3)
    target.features(x, ["1"])
    target.input_gradients(x, np.zeros(len(x), int))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_num_classes_is_inferred_from_one_input(mlp: nn.Module, x) -> None:
    target = TorchTarget(mlp)
    with pytest.raises(TargetError, match="target.num_classes: unknown until"):
        _ = target.num_classes
    assert target.infer_num_classes(x) == 3 and target.num_classes == 3
    with pytest.raises(TargetError, match=r"returned shape \(23, 3\).*expected \(23, 4\)"):
        TorchTarget(mlp, num_classes=4).predict(x)


def test_a_float64_module_gets_float64_inputs(x) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    with torch.no_grad():
        expected = model(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(TorchTarget(model).predict(x), expected, rtol=1e-12)


def test_features_have_one_flat_row_per_input_and_hooks_are_removed(x) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Unflatten(1, (1, 2, 2)), nn.Conv2d(1, 5, 2, padding=1), nn.Flatten())
    model.append(nn.Linear(45, 3))
    target = TorchTarget(model, batch_size=7)
    feats = target.features(x, ["1", "3", "1", ""])
    assert list(feats) == ["1", "3", ""]
    assert feats["1"].shape == (23, 5 * 3 * 3) and feats["3"].shape == (23, 3)
    np.testing.assert_allclose(feats[""], target.predict(x), rtol=1e-6)
    assert all(not m._forward_hooks for m in model.modules())


def test_unknown_layer_lists_the_layers(mlp: nn.Module, x) -> None:
    with pytest.raises(TargetError) as e:
        TorchTarget(mlp).features(x, ["fc9"])
    assert str(e.value) == (
        "features: no layer 'fc9' in Sequential; choose from '0', '1', '2', '3'"
    )
    assert all(not m._forward_hooks for m in mlp.modules())


def test_many_layers_are_listed_briefly(x) -> None:
    model = nn.Sequential(*[nn.Identity() for _ in range(40)], nn.Linear(4, 3))
    with pytest.raises(TargetError, match=r"'29' and 11 more \(see module.named_modules\(\)\)$"):
        TorchTarget(model).features(x, ["nope"])


class _TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.split = _Split()
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, _ = self.split(x)
        return self.head(a)


class _Split(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, :2], x[:, 2:]


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.block(x)))


def test_a_model_must_return_a_tensor(x) -> None:
    with pytest.raises(TargetError, match="returned a tuple, not a tensor of"):
        TorchTarget(_Split()).predict(x)


def test_layers_without_one_tensor_per_input_are_refused(x) -> None:
    with pytest.raises(TargetError, match="layer 'split' returns a tuple, not a tensor"):
        TorchTarget(_TwoOutputs()).features(x, ["split"])
    with pytest.raises(TargetError, match="layer 'block' runs more than once"):
        TorchTarget(_Shared()).features(x, ["block"])


def _reference_gradients(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each record's own loss, differentiated one record at a time."""
    model.eval()
    rows = []
    for xi, yi in zip(x, y, strict=True):
        xt = torch.from_numpy(xi[None]).requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xt), torch.tensor([int(yi)]))
        (grad,) = torch.autograd.grad(loss, xt)
        rows.append(grad[0].double().numpy())
    return np.stack(rows)


@pytest.mark.parametrize("batch_size", [1, 6, 512])
def test_input_gradients_match_autograd(mlp: nn.Module, x, y, batch_size: int) -> None:
    expected = _reference_gradients(mlp, x, y)
    target = TorchTarget(mlp.train(), batch_size=batch_size)
    with torch.no_grad():  # the caller's grad mode does not matter
        grads = target.input_gradients(x, y)
    assert grads.shape == x.shape and grads.dtype == np.float64
    np.testing.assert_allclose(grads, expected, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in mlp.parameters())


def test_input_gradients_of_a_softmax_model_use_its_probabilities(mlp: nn.Module, x, y) -> None:
    expected = _reference_gradients(mlp, x, y)
    target = TorchTarget(nn.Sequential(mlp, nn.Softmax(dim=1)), output="probabilities")
    np.testing.assert_allclose(target.input_gradients(x, y), expected, rtol=1e-4, atol=1e-6)


def test_input_gradients_check_labels(mlp: nn.Module, x, y) -> None:
    target = TorchTarget(mlp)
    with pytest.raises(TargetError, match=r"y has shape \(22,\), expected \(23,\)"):
        target.input_gradients(x, y[:-1])
    with pytest.raises(TargetError, match=r"labels must be 0..2, got 0..3"):
        target.input_gradients(x, np.where(y == 2, 3, y))


def test_logits_are_a_differentiable_tensor(mlp: nn.Module, x) -> None:
    xt = torch.from_numpy(x).requires_grad_(True)
    out = TorchTarget(mlp.train()).logits(xt)
    assert isinstance(out, torch.Tensor) and out.requires_grad
    np.testing.assert_allclose(out.detach().double().numpy(), eval_logits(mlp, x), rtol=1e-6)


def test_bad_inputs_and_arguments_give_one_line_errors(mlp: nn.Module) -> None:
    cases = [
        (
            lambda: TorchTarget(mlp).predict(np.zeros((2, 5), np.float32)),
            "inputs of shape \\(5,\\)",
        ),
        (lambda: TorchTarget(mlp, device="gpu"), "target.device: cannot run the model on 'gpu'"),
        (lambda: TorchTarget(mlp, batch_size=0), "target.batch_size: must be a positive integer"),
        (lambda: TorchTarget(mlp, output="probs"), "must be 'logits' or 'probabilities'"),
        (lambda: TorchTarget(mlp, input_bounds=(1, 0)), "low must be below high"),
        (lambda: TorchTarget(mlp, input_bounds=(0,)), r"must be \(low, high\) numbers"),
    ]
    if not torch.cuda.is_available():
        cases.append((lambda: TorchTarget(mlp, device="cuda"), "target.device: cannot run"))
    for make, message in cases:
        with pytest.raises(TargetError, match=message) as e:
            make()
        assert "\n" not in str(e.value)
    with pytest.raises(UnsupportedModelError, match="expected a torch nn.Module"):
        TorchTarget("model.pt")  # type: ignore[arg-type]


def test_input_bounds_are_kept_as_floats(mlp: nn.Module) -> None:
    assert TorchTarget(mlp, input_bounds=(0, 1)).input_bounds == (0.0, 1.0)


def test_torchscript_target_is_white_box_without_layer_hooks(
    mlp: nn.Module, x, y, tmp_path: Path
) -> None:
    torch.jit.script(mlp).save(str(tmp_path / "m.pt"))
    target = TorchScriptTarget(tmp_path / "m.pt", batch_size=4)
    np.testing.assert_allclose(target.predict(x), eval_logits(mlp, x), rtol=1e-6)
    assert {"gradients", "weights"} <= target.capabilities and target.files == (tmp_path / "m.pt",)
    assert target.description == "TorchScript m.pt"
    np.testing.assert_allclose(
        target.input_gradients(x, y), _reference_gradients(mlp, x, y), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(CapabilityError, match="load the model with kind 'torch'"):
        target.features(x, ["0"])
    in_memory = TorchScriptTarget(torch.jit.script(mlp))
    np.testing.assert_allclose(in_memory.predict(x), eval_logits(mlp, x), rtol=1e-6)


def test_torchscript_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file"):
        TorchScriptTarget(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(TargetError, match="junk.pt: not a TorchScript file") as e:
        TorchScriptTarget(tmp_path / "junk.pt")
    assert "\n" not in str(e.value)
