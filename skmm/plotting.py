"""Pictures of a fitted model, as scikit-learn Display objects.

Each Display is built with ``from_estimator`` (computes what it draws) or
from values already computed, draws itself with ``plot(ax=...)`` and keeps
``ax_`` and ``figure_``, like :class:`sklearn.metrics.ConfusionMatrixDisplay`
(use that one, and :func:`sklearn.metrics.classification_report`, for
confusion matrices and per-class scores).

Needs matplotlib: ``pip install "skmm[plot]"``.
"""

import numpy as np

from .inspection import modality_importance, modality_shap_values

__all__ = ["ModalityImportanceDisplay", "ModalityContributionDisplay", "TrainingCurveDisplay"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError('skmm\'s plots need matplotlib: pip install "skmm[plot]"') from error
    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax


def _final_step(estimator):
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


class ModalityImportanceDisplay:
    """Score drop per modality when it is made absent or permuted.

    Build it with :meth:`from_estimator` or :meth:`from_importances` (the
    result of :func:`skmm.inspection.modality_importance`).

    Parameters
    ----------
    modalities : list of str
        Modality names.
    absence_importances : ndarray of shape (n_modalities,)
        Score drop when the modality is absent.
    permutation_importances : ndarray of shape (n_modalities, n_repeats)
        Score drops when the modality's rows are permuted.
    baseline_score : float, default=None
        Score of the unaltered data, shown in the title.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmm.plotting import ModalityImportanceDisplay
    >>> display = ModalityImportanceDisplay(["image", "text"], [0.3, 0.01], [[0.25, 0.3], [0.0, 0.02]]).plot()
    >>> [label.get_text() for label in display.ax_.get_yticklabels()]
    ['image', 'text']
    """

    def __init__(self, modalities, absence_importances, permutation_importances, *, baseline_score=None):
        self.modalities = list(modalities)
        self.absence_importances = np.asarray(absence_importances, dtype=float)
        self.permutation_importances = np.asarray(permutation_importances, dtype=float)
        self.baseline_score = baseline_score

    @classmethod
    def from_importances(cls, result, *, ax=None):
        """Draw the result of :func:`skmm.inspection.modality_importance`.

        Parameters
        ----------
        result : Bunch
            As returned by ``modality_importance``.
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.

        Returns
        -------
        display : ModalityImportanceDisplay
        """
        display = cls(
            result.modalities,
            result.absence_importances,
            result.permutation_importances,
            baseline_score=result.baseline_score,
        )
        return display.plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, scoring=None, n_repeats=5, random_state=None, ax=None):
        """Compute :func:`~skmm.inspection.modality_importance` and draw it.

        Parameters
        ----------
        estimator : estimator
            A fitted pipeline or classifier.
        X : DataFrame
            The raw table.
        y : array-like
            True labels.
        scoring, n_repeats, random_state
            As for ``modality_importance``.
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ModalityImportanceDisplay
        """
        _pyplot()
        result = modality_importance(
            estimator, X, y, scoring=scoring, n_repeats=n_repeats, random_state=random_state
        )
        return cls.from_importances(result, ax=ax)

    def plot(self, *, ax=None):
        """Draw horizontal bars: absence drop and permutation drop (mean ± std).

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ModalityImportanceDisplay
        """
        ax = _axes(ax)
        positions = np.arange(len(self.modalities))
        height = 0.38
        ax.barh(positions - height / 2, self.absence_importances, height, label="modality absent")
        ax.barh(
            positions + height / 2,
            self.permutation_importances.mean(axis=1),
            height,
            xerr=self.permutation_importances.std(axis=1),
            label="modality permuted (mean ± std)",
        )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(positions, self.modalities)
        ax.invert_yaxis()
        ax.set_xlabel("drop in score")
        title = "Modality importance"
        if self.baseline_score is not None:
            title += f" (score with every modality: {self.baseline_score:.3f})"
        ax.set_title(title)
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


class ModalityContributionDisplay:
    """What each modality added to one row's predicted probability (SHAP values).

    Bars start from the probability with every modality absent (the class
    prior) and, added up, reach the predicted probability.

    Parameters
    ----------
    modalities : list of str
    contributions : ndarray of shape (n_modalities,)
        Shapley value of each modality for the class shown.
    base_value : float
        Probability of the class with every modality absent.
    prediction : float
        Predicted probability of the class.
    class_label : str, default=None
        The class shown.
    row_label : str, default=None
        Name of the row (its index in the data).

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmm.plotting import ModalityContributionDisplay
    >>> display = ModalityContributionDisplay(["image", "text"], [0.4, -0.1], 0.5, 0.8, class_label="dog").plot()
    >>> display.ax_.get_title()
    "P('dog') = 0.500 (every modality absent) + contributions = 0.800"
    """

    def __init__(self, modalities, contributions, base_value, prediction, *, class_label=None, row_label=None):
        self.modalities = list(modalities)
        self.contributions = np.asarray(contributions, dtype=float)
        self.base_value = float(base_value)
        self.prediction = float(prediction)
        self.class_label = class_label
        self.row_label = row_label

    @classmethod
    def from_shap_values(cls, result, *, row=0, target=None, ax=None):
        """Draw one row of the result of :func:`skmm.inspection.modality_shap_values`.

        Parameters
        ----------
        result : Bunch
            As returned by ``modality_shap_values``.
        row : int, default=0
            Position of the row in that result.
        target : class label, default=None
            The class whose probability is explained; the predicted class when None.
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ModalityContributionDisplay
        """
        classes = result.classes.tolist()
        if target is None:
            column = int(np.argmax(result.predictions[row]))
        elif target in classes:
            column = classes.index(target)
        else:
            raise ValueError(f"target must be one of the classes {classes}, got {target!r}.")
        display = cls(
            result.modalities,
            result.shap_values[row, :, column],
            result.base_values[column],
            result.predictions[row, column],
            class_label=classes[column],
            row_label=result.index[row],
        )
        return display.plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, X, *, row=0, target=None, ax=None):
        """Compute the SHAP values of row ``row`` of ``X`` and draw them.

        Needs ``shap`` (``pip install "skmm[explain]"``) and matplotlib.

        Parameters
        ----------
        estimator : estimator
            A fitted pipeline or classifier.
        X : DataFrame
            The raw table.
        row : int, default=0
            Position of the row to explain.
        target : class label, default=None
            The class whose probability is explained; the predicted class when None.
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ModalityContributionDisplay
        """
        _pyplot()
        result = modality_shap_values(estimator, X.iloc[[row]])
        return cls.from_shap_values(result, row=0, target=target, ax=ax)

    def plot(self, *, ax=None):
        """Draw a waterfall of the contributions, from the all-absent probability to the prediction.

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : ModalityContributionDisplay
        """
        ax = _axes(ax)
        starts = self.base_value + np.concatenate([[0.0], np.cumsum(self.contributions)[:-1]])
        colours = ["tab:green" if value >= 0 else "tab:red" for value in self.contributions]
        positions = np.arange(len(self.modalities))
        ax.barh(positions, self.contributions, left=starts, color=colours)
        for position, start, value in zip(positions, starts, self.contributions):
            ax.annotate(f"{value:+.3f}", (start + value, position), xytext=(3 if value >= 0 else -3, 0),
                        textcoords="offset points", va="center", ha="left" if value >= 0 else "right")
        edges = np.concatenate([starts, starts + self.contributions, [self.base_value, self.prediction]])
        padding = 0.12 * max(np.ptp(edges), 0.05)
        ax.set_xlim(edges.min() - padding, edges.max() + padding)
        ax.axvline(self.base_value, color="grey", linestyle=":", label="every modality absent")
        ax.axvline(self.prediction, color="black", linestyle="--", label="prediction")
        ax.set_yticks(positions, self.modalities)
        ax.invert_yaxis()
        label = "class" if self.class_label is None else repr(self.class_label)
        ax.set_xlabel(f"probability of {label}")
        ax.set_title(f"P({label}) = {self.base_value:.3f} (every modality absent) "
                     f"+ contributions = {self.prediction:.3f}")
        if self.row_label is not None:
            ax.set_ylabel(f"row {self.row_label}")
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


class TrainingCurveDisplay:
    """Training and validation loss per epoch, with the epoch whose weights were kept.

    Parameters
    ----------
    train_loss : array-like of shape (n_epochs,)
    valid_loss : array-like of shape (n_epochs,), default=None
        Loss on the held-out share (``early_stopping=True``).
    best_epoch : int, default=None
        Epoch (1-based) of the best validation loss, whose weights early stopping kept.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmm.plotting import TrainingCurveDisplay
    >>> display = TrainingCurveDisplay([0.9, 0.5, 0.3], valid_loss=[0.8, 0.6, 0.7], best_epoch=2).plot()
    >>> [line.get_label() for line in display.ax_.get_lines()]
    ['train loss', 'validation loss', 'best epoch (2)']
    """

    def __init__(self, train_loss, *, valid_loss=None, best_epoch=None):
        self.train_loss = np.asarray(train_loss, dtype=float)
        self.valid_loss = None if valid_loss is None else np.asarray(valid_loss, dtype=float)
        self.best_epoch = best_epoch

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Draw the ``history_`` of a fitted :class:`~skmm.MultimodalClassifier` (or a pipeline ending in one).

        Parameters
        ----------
        estimator : MultimodalClassifier or Pipeline
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : TrainingCurveDisplay
        """
        _pyplot()
        classifier = _final_step(estimator)
        history = getattr(classifier, "history_", None)
        if history is None:
            raise ValueError(
                f"{type(classifier).__name__} has no history_: fit a MultimodalClassifier "
                "(or a pipeline ending in one) before drawing its training curve."
            )
        train_loss = [epoch["train_loss"] for epoch in history]
        valid_loss = best_epoch = None
        if all("valid_loss" in epoch for epoch in history):
            valid_loss = [epoch["valid_loss"] for epoch in history]
            best_epoch = int(np.argmin(valid_loss)) + 1
        return cls(train_loss, valid_loss=valid_loss, best_epoch=best_epoch).plot(ax=ax)

    def plot(self, *, ax=None):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None

        Returns
        -------
        display : TrainingCurveDisplay
        """
        ax = _axes(ax)
        epochs = np.arange(1, len(self.train_loss) + 1)
        ax.plot(epochs, self.train_loss, label="train loss")
        if self.valid_loss is not None:
            ax.plot(epochs, self.valid_loss, label="validation loss")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="black", linestyle="--", label=f"best epoch ({self.best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title("Training curve")
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self
