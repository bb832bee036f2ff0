"""skorch glue: row-weighted losses, batches that carry the weights, per-fit random streams."""

import copy
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skorch.dataset import Dataset  # noqa: E402

from skmm.nn import FocalLoss, FusionLoss  # noqa: E402
from skmm.nn._training import FitRandomness, TensorBatches  # noqa: E402


def logits_and_target(n=12, n_classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_classes, generator=generator), torch.arange(n) % n_classes


@pytest.mark.parametrize("loss", ["cross_entropy", "focal"])
def test_an_integer_row_weight_counts_as_that_many_copies_of_the_row(loss):
    logits, target = logits_and_target()
    weight = torch.tensor([2.0, 0.0, 1.0, 3.0] * 3)
    copies = torch.repeat_interleave(torch.arange(12), weight.long())
    criterion = FusionLoss(loss, weight=torch.tensor([1.0, 2.0, 0.5]))
    weighted = criterion(logits, target, sample_weight=weight)
    torch.testing.assert_close(weighted, criterion(logits[copies], target[copies]))


def test_class_weights_multiply_row_weights():
    logits, target = logits_and_target()
    class_weight, row_weight = torch.tensor([1.0, 2.0, 0.5]), torch.rand(12, generator=torch.Generator().manual_seed(0))
    for loss in ("cross_entropy", "focal"):
        both = FusionLoss(loss, weight=class_weight)(logits, target, sample_weight=row_weight)
        folded = FusionLoss(loss)(logits, target, sample_weight=row_weight * class_weight[target])
        torch.testing.assert_close(both, folded)


def test_without_row_weights_the_loss_is_torchs_cross_entropy():
    logits, target = logits_and_target()
    class_weight = torch.tensor([1.0, 2.0, 0.5])
    expected = torch.nn.functional.cross_entropy(logits, target, weight=class_weight)
    torch.testing.assert_close(FusionLoss(weight=class_weight)(logits, target), expected)
    torch.testing.assert_close(FusionLoss(weight=class_weight)(logits, target, torch.ones(12)), expected)
    torch.testing.assert_close(FocalLoss(gamma=0.0, weight=class_weight)(logits, target), expected)


def test_rows_of_weight_zero_contribute_nothing_to_the_loss_or_its_gradient():
    logits, target = logits_and_target()
    logits.requires_grad_(True)
    weight = torch.tensor([1.0, 0.0] * 6)
    loss = FusionLoss()(logits, target, sample_weight=weight)
    loss.backward()
    assert (logits.grad[1::2] == 0).all()
    torch.testing.assert_close(loss, FusionLoss()(logits[::2], target[::2]))
    assert FusionLoss()(logits, target, sample_weight=torch.zeros(12)).item() == 0.0  # a batch of weight 0


def test_unimodal_losses_weigh_the_rows_where_each_modality_is_present():
    logits, target = logits_and_target()
    unimodal = torch.stack([logits_and_target(seed=1)[0], logits_and_target(seed=2)[0]], dim=1)
    present = torch.ones(12, 2, dtype=torch.bool)
    present[:4, 1] = False
    weight = torch.tensor([3.0, 1.0, 0.0] * 4)
    copies = torch.repeat_interleave(torch.arange(12), weight.long())
    criterion = FusionLoss(unimodal_loss=0.5)
    weighted = criterion((logits, unimodal, present), target, sample_weight=weight)
    repeated = criterion((logits[copies], unimodal[copies], present[copies]), target[copies])
    torch.testing.assert_close(weighted, repeated)


def test_unimodal_losses_are_each_modality_s_mean_over_its_rows_then_the_mean_over_modalities():
    """The losses of all modalities come from one call; what they add is written out here by hand."""
    logits, target = logits_and_target()
    unimodal = torch.stack([logits_and_target(seed=1)[0], logits_and_target(seed=2)[0]], dim=1)
    present = torch.ones(12, 2, dtype=torch.bool)
    present[:5, 0] = False
    class_weight = torch.tensor([1.0, 2.0, 0.5])
    criterion = FusionLoss(weight=class_weight, unimodal_loss=0.7, label_smoothing=0.1)
    by_hand = []
    for m in range(2):
        rows, weights = target[present[:, m]], class_weight[target[present[:, m]]]
        smoothed = torch.nn.functional.cross_entropy(unimodal[present[:, m], m], rows, reduction="none",
                                                     label_smoothing=0.1)
        by_hand.append((smoothed * weights).sum() / weights.sum())
    fused = torch.nn.functional.cross_entropy(logits, target, reduction="none", label_smoothing=0.1)
    expected = (fused * class_weight[target]).sum() / class_weight[target].sum() + 0.7 * torch.stack(by_hand).mean()
    torch.testing.assert_close(criterion((logits, unimodal, present), target), expected)


def test_label_smoothing_spreads_a_share_of_each_target():
    logits, target = logits_and_target()
    smoothed = FusionLoss(label_smoothing=0.2)(logits, target)
    soft = torch.full((12, 3), 0.2 / 3)
    soft[torch.arange(12), target] += 0.8
    expected = -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(smoothed, expected)


def test_batches_carry_each_rows_weight():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    dataset = Dataset({"X": X, "sample_weight": np.arange(10, dtype=np.float32)}, np.arange(10))
    subset = torch.utils.data.Subset(dataset, [7, 2, 5])
    batches = list(TensorBatches(subset, batch_size=2))
    assert [len(y) for _, y in batches] == [2, 1]
    for features, y in batches:
        assert (features["sample_weight"].numpy() == y.numpy()).all()
        assert (features["X"][:, 0].numpy() == 2 * y.numpy()).all()


def test_a_fits_draws_are_its_own_whatever_other_fits_and_the_caller_draw():
    def draws(seed, caller_draws):
        randomness, drawn = FitRandomness(seed), []
        for _ in range(50):
            with randomness.drawing():
                drawn.append(torch.rand(3))
            caller_draws()
        return torch.stack(drawn)

    alone = draws(0, lambda: None)
    stop = threading.Event()

    def another_fit():
        randomness = FitRandomness(None)
        while not stop.is_set():
            with randomness.drawing():
                torch.rand(100)

    others = [threading.Thread(target=another_fit) for _ in range(2)]
    for thread in others:
        thread.start()
    try:
        busy = draws(0, lambda: torch.rand(5))
    finally:
        stop.set()
        for thread in others:
            thread.join()
    torch.testing.assert_close(busy, alone)
    torch.manual_seed(0)  # the same stream as torch.manual_seed(seed) in a process of its own
    torch.testing.assert_close(alone[:2].flatten(), torch.rand(6))


def test_late_fusion_learns_its_combination_from_weighted_held_out_rows():
    from skmm.nn import FUSIONS

    late = FUSIONS["late"](n_modalities=2, shared_dim=4, n_classes=3).eval()
    projected = torch.randn(30, 2, 4, generator=torch.Generator().manual_seed(0))
    present = torch.ones(30, 2, dtype=torch.bool)
    with torch.no_grad():  # the first modality's head right on two rows in three: a finite best weight
        target = late.unimodal_logits(projected)[:, 0].argmax(dim=1)
    target[::3] = (target[::3] + 1) % 3
    weight = torch.tensor([2.0, 0.0, 1.0, 1.0, 0.5] * 6)
    kept = weight > 0
    fitted = {}
    for name, arguments in {
        "weighted": (projected, present, target, weight),
        "without the rows of weight 0": (projected[kept], present[kept], target[kept], weight[kept]),
        "unweighted": (projected, present, target, None),
    }.items():
        twin = copy.deepcopy(late)
        twin.fit_weights(*arguments[:3], sample_weight=arguments[3])
        fitted[name] = twin.modality_scores.detach().exp()  # the powers of the heads' probabilities
    # the second head's weight fades towards 0 along a flat valley of the loss, where L-BFGS stops at
    # a point that float rounding moves (seen 2.5e-4 apart on a busy machine): compare to 1e-3, a
    # hundredth of the gap that the weights make
    torch.testing.assert_close(fitted["weighted"], fitted["without the rows of weight 0"], atol=1e-3, rtol=0)
    assert (fitted["weighted"] - fitted["unweighted"]).abs().max() > 0.1
