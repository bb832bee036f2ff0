"""Fusion strategies: the {name: class} table and the one interface every built-in strategy follows."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import skmm
from skmm.nn import FUSIONS

torch = pytest.importorskip("torch")

from skmm.nn import FusionStrategy  # noqa: E402

#: the keyword arguments every strategy is documented to be constructed with
COMMON = dict(n_modalities=3, shared_dim=8, n_classes=4, hidden_dims=(16,), dropout=0.0)


def projected_and_present(seed=0):
    """Five rows of three modalities: all present, one or two absent, and a row with none."""
    present = torch.tensor(
        [[True, True, True], [True, False, True], [False, True, False], [False, False, True], [False, False, False]]
    )
    generator = torch.Generator().manual_seed(seed)
    projected = torch.randn(5, 3, 8, generator=generator) * present.unsqueeze(-1)
    return projected, present


def test_importing_the_table_leaves_torch_unloaded():
    code = (
        "import sys, skmm.nn\n"
        "names = list(skmm.nn.FUSIONS)\n"
        "assert 'concat' in skmm.nn.FUSIONS and 'sum' not in skmm.nn.FUSIONS\n"
        "print(names, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(skmm.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['concat', 'weighted', 'gated', 'attention', 'late'] False"


def test_table_maps_names_to_classes_and_is_read_only():
    assert list(FUSIONS) == ["concat", "weighted", "gated", "attention", "late"]
    assert len(FUSIONS) == 5 and "concat" in FUSIONS and "sum" not in FUSIONS
    assert FUSIONS["concat"] is skmm.nn.ConcatFusion
    assert dict(FUSIONS)["late"] is skmm.nn.LateFusion
    with pytest.raises(TypeError):
        FUSIONS["mine"] = FUSIONS["concat"]
    with pytest.raises(KeyError):
        FUSIONS["sum"]


def test_old_import_paths_still_work():
    from skmm.nn import FocalLoss, FusionNetwork

    assert issubclass(FusionNetwork, torch.nn.Module) and issubclass(FocalLoss, torch.nn.Module)
    assert "FusionNetwork" in dir(skmm.nn)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        skmm.nn.Nope


@pytest.mark.parametrize("name", list(FUSIONS))
def test_every_builtin_strategy_follows_the_interface(name):
    strategy_class = FUSIONS[name]
    assert issubclass(strategy_class, FusionStrategy)
    strategy = strategy_class(**COMMON).eval()
    projected, present = projected_and_present()

    logits, weights = strategy(projected, present)

    assert logits.shape == (5, 4)
    assert torch.isfinite(logits[:4]).all()  # the row with no modality is replaced by the network
    if weights is None:
        assert name == "concat"
        return
    assert weights.shape == (5, 3)
    assert (weights >= 0).all()
    assert (weights[~present] == 0).all()
    torch.testing.assert_close(weights[:4].sum(dim=1), torch.ones(4))


@pytest.mark.parametrize("name", list(FUSIONS))
def test_every_builtin_strategy_learns_through_its_output(name):
    strategy = FUSIONS[name](**COMMON)
    projected, present = projected_and_present()
    projected.requires_grad_(True)
    logits, _ = strategy(projected, present)
    logits[:4].sum().backward()
    if name == "late":
        # classic late fusion: in training the combination's loss moves only its weights; each head
        # learns from its own logits (FusionLoss scores them), as a classifier trained on its own
        assert strategy.modality_scores.grad is not None
        assert all(parameter.grad is None for parameter in strategy.heads.parameters())
        strategy.unimodal_logits(projected)[:4].sum().backward()
    assert all(parameter.grad is not None for parameter in strategy.parameters() if parameter.requires_grad)
    assert projected.grad[present].abs().sum() > 0


def test_attention_heads_must_divide_shared_dim():
    with pytest.raises(ValueError, match="shared_dim=8 must be divisible by attention_heads=3"):
        FUSIONS["attention"](**COMMON, attention_heads=3)
