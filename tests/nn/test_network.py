"""FusionNetwork: what is common to all strategies (masks, class prior) and how a strategy plugs in."""

import pytest

torch = pytest.importorskip("torch")

from skmm.nn import FusionNetwork  # noqa: E402


class MaxPool(torch.nn.Module):
    """Element-wise max over the present modalities, then a linear layer; no weights."""

    def __init__(self, *, shared_dim, n_classes):
        super().__init__()
        self.head = torch.nn.Linear(shared_dim, n_classes)

    def forward(self, projected, present):
        pooled = projected.masked_fill(~present.unsqueeze(-1), float("-inf")).amax(dim=1)
        return self.head(torch.nan_to_num(pooled, neginf=0.0)), None


class TakesEverything(MaxPool):
    def __init__(self, **options):
        self.options = options
        super().__init__(shared_dim=options["shared_dim"], n_classes=options["n_classes"])


class ForgetsTheWeights(MaxPool):
    def forward(self, projected, present):
        return super().forward(projected, present)[0]


class NeedsAnOption(MaxPool):
    def __init__(self, *, shared_dim, n_classes, pool_size):
        super().__init__(shared_dim=shared_dim, n_classes=n_classes)


def inputs():
    X = torch.randn(4, 5)
    X[1, :3] = float("nan")  # first modality absent
    X[2, :] = float("nan")  # nothing present
    return X


def test_a_strategy_receives_only_the_options_it_names():
    network = FusionNetwork([3, 2], n_classes=3, fusion=MaxPool, shared_dim=8)
    assert network.strategy.head.in_features == 8
    logits, weights = network(inputs(), return_weights=True)
    assert logits.shape == (4, 3) and weights is None


def test_a_strategy_taking_kwargs_receives_every_option():
    network = FusionNetwork([3, 2], n_classes=3, fusion=TakesEverything, shared_dim=8, attention_heads=2)
    assert network.strategy.options == dict(
        n_modalities=2, shared_dim=8, n_classes=3, hidden_dims=(64,), dropout=0.1, attention_heads=2
    )


def test_rows_without_any_modality_get_the_class_prior():
    prior = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    for fusion in ("concat", "attention", MaxPool):
        network = FusionNetwork([3, 2], n_classes=3, fusion=fusion, shared_dim=8, class_log_prior=prior).eval()
        logits = network(inputs())
        torch.testing.assert_close(logits[2], prior)
        assert torch.isfinite(logits).all()


def test_modality_dropout_keeps_at_least_one_present_modality():
    torch.manual_seed(0)
    seen = []
    network = FusionNetwork([3, 2], n_classes=3, fusion=MaxPool, shared_dim=8, modality_dropout=0.9).train()
    network.strategy.register_forward_hook(lambda _module, args, _output: seen.append(args[1]))
    network(torch.randn(64, 5))
    assert seen[0].any(dim=1).all()
    assert not seen[0].all()  # some modalities were dropped


@pytest.mark.parametrize(
    "fusion, error, message",
    [
        ("sum", ValueError, r"fusion must be one of \['concat', .*'late'\] or a torch.nn.Module subclass"),
        (dict, TypeError, "following skmm.nn.FusionStrategy's interface"),
        (MaxPool(shared_dim=8, n_classes=3), TypeError, "got MaxPool"),
        (NeedsAnOption, TypeError, "NeedsAnOption cannot be built .*'pool_size'"),
    ],
)
def test_a_wrong_fusion_names_the_interface(fusion, error, message):
    with pytest.raises(error, match=message):
        FusionNetwork([3, 2], n_classes=3, fusion=fusion, shared_dim=8)


def test_a_strategy_returning_a_bare_tensor_is_told_the_interface():
    network = FusionNetwork([3, 2], n_classes=3, fusion=ForgetsTheWeights, shared_dim=8)
    with pytest.raises(TypeError, match=r"ForgetsTheWeights.forward returned Tensor, expected a pair \(logits, weights"):
        network(inputs())
