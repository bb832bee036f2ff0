"""One self-contained HTML page about a model: scores, confusion matrix, modality importance, training
curve and the worst misclassified rows shown as they are (pictures, text, an audio player, frames
of a video clip).

Every figure is embedded as a base64 PNG, so the page is one file with no links to anything. Needs
matplotlib: ``pip install "skmm[plot]"``.
"""

import base64
import html
import io
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report, f1_score
from sklearn.model_selection import StratifiedKFold, cross_validate, train_test_split
from sklearn.utils.validation import check_is_fitted

from ._fitted import input_kinds, modality_columns
from ._utils import is_missing
from ._version import __version__
from .exceptions import InputWarning
from .inspection import modality_importance

__all__ = ["write_report", "report_html"]

THUMBNAIL_PX = 96
TEXT_CHARS = 300
#: an audio preview is the first seconds, as 16 kHz 16-bit WAV: a bounded size whatever the file
AUDIO_PREVIEW_SECONDS = 10
AUDIO_PREVIEW_RATE = 16_000
#: frames shown of a video clip, sampled uniformly
VIDEO_PREVIEW_FRAMES = 3


def write_report(estimator, X, y, path, *, test_size=0.25, cv=None, n_repeats=5, n_worst=8,
                 random_state=None, title="skmm model report"):
    """Write an HTML report of a classifier's quality and of which modality mattered.

    The page holds: accuracy, balanced accuracy and macro F1; precision,
    recall and F1 per class; the confusion matrix; cross-validated scores
    (when ``cv`` is given); the modality importance (score drop when each
    modality is absent or permuted); the training curve; and the ``n_worst``
    misclassified rows (lowest probability of their true class) with their
    images as thumbnails, their texts, and their audio as players.

    A fitted ``estimator`` is evaluated on ``X, y`` as given (data it was not
    trained on, or the scores are optimistic). An unfitted one is fitted on a
    stratified share ``1 - test_size`` of the rows and evaluated on the rest.

    Parameters
    ----------
    estimator : estimator
        A pipeline (:class:`~skmm.MultimodalFusion` then
        :class:`~skmm.MultimodalClassifier`), fitted or not.
    X : DataFrame
        The raw table (file paths, texts, numbers).
    y : array-like of shape (n_samples,)
        True labels.
    path : str or path-like
        Where to write the page.
    test_size : float, default=0.25
        Share of the rows held out when ``estimator`` is not fitted.
    cv : int, cross-validation generator or None, default=None
        Also report cross-validated scores of a clone of ``estimator`` on
        all of ``X``; an int is a number of stratified, shuffled folds.
    n_repeats : int, default=5
        Permutations per modality for the importance.
    n_worst : int, default=8
        Misclassified rows shown.
    random_state : int or None, default=None
        Seed of the split, the folds and the permutations.
    title : str, default="skmm model report"
        Title of the page.

    Returns
    -------
    path : pathlib.Path
        The page written.

    See Also
    --------
    skmm.inspection.modality_importance, skmm.plotting.TrainingCurveDisplay

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalClassifier, MultimodalFusion
    >>> from skmm.report import write_report
    >>> rng = np.random.RandomState(0)
    >>> y = np.repeat(["cat", "dog"], 40)
    >>> X = pd.DataFrame({"weight": rng.randn(80) + 2 * (y == "dog"), "age": rng.randn(80)})
    >>> pipe = Pipeline([("fusion", MultimodalFusion([("body", StandardScaler(), ["weight"]),
    ...                                               ("age", StandardScaler(), ["age"])])),
    ...                  ("clf", MultimodalClassifier(max_epochs=10, random_state=0))])
    >>> page = write_report(pipe, X, y, getfixture("tmp_path") / "report.html", n_repeats=2, random_state=0)
    >>> "Confusion matrix" in page.read_text()
    True
    """
    page = report_html(estimator, X, y, test_size=test_size, cv=cv, n_repeats=n_repeats, n_worst=n_worst,
                       random_state=random_state, title=title)
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def report_html(estimator, X, y, *, test_size=0.25, cv=None, n_repeats=5, n_worst=8, random_state=None,
                title="skmm model report"):
    """The page of :func:`write_report`, as a string.

    Parameters
    ----------
    estimator, X, y, test_size, cv, n_repeats, n_worst, random_state, title
        As for :func:`write_report`.

    Returns
    -------
    str
        The HTML page.
    """
    _check_matplotlib()
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame (the raw table), got {type(X).__name__}.")
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels; give one label per row.")
    y = pd.Series(y, index=X.index, name="label")

    sections = []
    cv_section = _cross_validation_section(estimator, X, y, cv, random_state) if cv is not None else None
    if _is_fitted(estimator):
        model, X_eval, y_eval = estimator, X, y
        evaluation = f"the {len(X)} rows given (the model was fitted before; rows it saw make the scores optimistic)"
    else:
        X_train, X_eval, y_train, y_eval = train_test_split(
            X, y, test_size=test_size, stratify=y, random_state=random_state
        )
        model = clone(estimator).fit(X_train, y_train)
        evaluation = f"a stratified hold-out of {len(X_eval)} rows (fitted on the other {len(X_train)})"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        proba = model.predict_proba(X_eval)
    classes = np.asarray(model.classes_)
    predicted = classes[proba.argmax(axis=1)]

    sections.append(_scores_section(y_eval, predicted, evaluation))
    if cv_section:
        sections.append(cv_section)
    sections.append(_confusion_section(y_eval, predicted, classes))
    sections.append(_importance_section(model, X_eval, y_eval, n_repeats, random_state))
    sections.append(_training_section(model))
    sections.append(_worst_rows_section(model, X_eval, y_eval, proba, classes, n_worst))
    return _page(title, model, X, y, sections)


# --------------------------------------------------------------------------- sections


def _scores_section(y_true, y_pred, evaluation):
    scores = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced accuracy": balanced_accuracy_score(y_true, y_pred),
        "macro F1": f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
    summary = "".join(f"<li><b>{name}</b>: {value:.3f}</li>" for name, value in scores.items())
    per_class = pd.DataFrame(classification_report(y_true, y_pred, output_dict=True, zero_division=0)).T
    per_class = per_class.drop(index=["accuracy"], errors="ignore")
    per_class["support"] = per_class["support"].astype(int)
    table = per_class.rename(columns={"f1-score": "F1"}).to_html(
        float_format=lambda value: f"{value:.3f}", classes="scores", border=0
    )
    return (f'<section id="scores"><h2>Scores</h2><p>Measured on {html.escape(evaluation)}.</p>'
            f"<ul>{summary}</ul><h3>Per class</h3>{table}</section>")


def _cross_validation_section(estimator, X, y, cv, random_state):
    if isinstance(cv, int):
        cv = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    metrics = {"accuracy": "accuracy", "balanced accuracy": "balanced_accuracy", "macro F1": "f1_macro",
               "macro recall": "recall_macro"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        results = cross_validate(clone(estimator), X, y, cv=cv, scoring=metrics)
    rows = [(name, results[f"test_{name}"]) for name in metrics]
    body = "".join(
        f"<tr><td>{name}</td><td>{values.mean():.3f}</td><td>{values.std():.3f}</td>"
        f"<td>{' '.join(f'{v:.3f}' for v in values)}</td></tr>"
        for name, values in rows
    )
    n_folds = len(rows[0][1])
    return (f'<section id="cross-validation"><h2>Cross-validated scores</h2>'
            f"<p>{n_folds} folds over all {len(X)} rows, a fresh clone of the model fitted in each.</p>"
            f'<table class="scores"><tr><th>metric</th><th>mean</th><th>std</th><th>per fold</th></tr>'
            f"{body}</table></section>")


def _confusion_section(y_true, y_pred, classes):
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 2.5 + 0.45 * len(classes)
    ax = _axes((size + 1, size))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=classes, cmap="Blues", ax=ax,
                                            colorbar=False, xticks_rotation=45 if len(classes) > 6 else "horizontal")
    ax.set_title("rows: true class, columns: predicted")
    return f'<section id="confusion"><h2>Confusion matrix</h2>{_figure(ax.figure, "Confusion matrix")}</section>'


def _importance_section(model, X, y, n_repeats, random_state):
    from .plotting import ModalityImportanceDisplay

    result = modality_importance(model, X, y, n_repeats=n_repeats, random_state=random_state)
    ax = _axes((7, 1.2 + 0.6 * len(result.modalities)))
    ModalityImportanceDisplay.from_importances(result, ax=ax)
    table = pd.DataFrame({
        "modality": result.modalities,
        "drop when absent": result.absence_importances,
        "drop when permuted (mean)": result.permutation_importances_mean,
        "(std)": result.permutation_importances_std,
    }).to_html(float_format=lambda value: f"{value:.3f}", classes="scores", border=0, index=False)
    return ('<section id="importance"><h2>Modality importance</h2>'
            "<p>Drop in accuracy when a modality is made absent (its input set to missing, which the model "
            f"masks) or when its rows are shuffled across samples ({n_repeats} times).</p>"
            f"{_figure(ax.figure, 'Modality importance')}{table}</section>")


def _training_section(model):
    from .plotting import TrainingCurveDisplay

    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    if getattr(classifier, "history_", None) is None:
        return ('<section id="training"><h2>Training curve</h2>'
                "<p>The final step keeps no training history.</p></section>")
    ax = _axes((7, 3.5))
    TrainingCurveDisplay.from_estimator(classifier, ax=ax)
    return f'<section id="training"><h2>Training curve</h2>{_figure(ax.figure, "Training curve")}</section>'


def _worst_rows_section(model, X, y, proba, classes, n_worst):
    class_index = {label: i for i, label in enumerate(classes.tolist())}
    true_index = np.array([class_index.get(label, -1) for label in y.tolist()])
    p_true = np.where(true_index >= 0, proba[np.arange(len(y)), np.maximum(true_index, 0)], 0.0)
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != true_index)
    worst = wrong[np.argsort(p_true[wrong], kind="stable")][:n_worst]
    heading = '<section id="worst"><h2>Worst misclassified rows</h2>'
    if not len(worst):
        return heading + "<p>No row is misclassified.</p></section>"
    kinds = input_kinds(model)
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["row", "true", "predicted", *X.columns])
    body = []
    for position in worst:
        row = X.iloc[position]
        cells = [
            html.escape(str(X.index[position])),
            f"{html.escape(str(y.iloc[position]))}<br><small>p={p_true[position]:.2f}</small>",
            f"{html.escape(str(classes[predicted[position]]))}<br><small>p={proba[position].max():.2f}</small>",
        ]
        cells += [_cell(row[column], kinds.get(column)) for column in X.columns]
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return (heading + f"<p>{len(wrong)} of {len(y)} rows are misclassified; the {len(worst)} shown had the "
            "lowest probability of their true class.</p>"
            f'<table class="rows"><tr>{header}</tr>{"".join(body)}</table></section>')


# --------------------------------------------------------------------------- rendering


def _cell(value, kind):
    if is_missing(value):
        return '<span class="absent">absent</span>'
    preview = _PREVIEWS.get(kind)
    if preview is not None:
        try:
            return preview(value)
        except Exception as error:  # a broken file is shown as such, never stops the report
            return f'<span class="absent">unreadable: {html.escape(str(error)[:120])}</span>'
    text = str(value)
    if len(text) > TEXT_CHARS:
        text = text[:TEXT_CHARS] + "…"
    return html.escape(text)


def _thumbnail(image, alt):
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="thumb" alt="{alt}" src="data:image/png;base64,{data}">'


def _image_cell(value):
    from .io import decode_image, read_image_source

    _, raw = read_image_source(value)
    return _thumbnail(decode_image(raw), "image")


def _audio_cell(value):
    import soundfile

    from .io import decode_audio, read_audio_source

    _, raw = read_audio_source(value)
    waveform = decode_audio(raw, sr=AUDIO_PREVIEW_RATE, max_duration=AUDIO_PREVIEW_SECONDS)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(waveform, dtype=np.float32), AUDIO_PREVIEW_RATE, format="WAV",
                    subtype="PCM_16")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<audio controls preload="metadata" src="data:audio/wav;base64,{encoded}"></audio>'


def _video_cell(value):
    from PIL import Image

    from .io import decode_video_frames, read_video_source

    _, raw = read_video_source(value)
    frames = decode_video_frames(raw, frames=VIDEO_PREVIEW_FRAMES, size=THUMBNAIL_PX)
    return "".join(_thumbnail(Image.fromarray(frame), "video frame") for frame in frames)


#: how a cell of each kind of column is shown; other kinds as text
_PREVIEWS = {"image": _image_cell, "audio": _audio_cell, "video": _video_cell}

def _figure(fig, alt):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _is_fitted(estimator):
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _check_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError('the HTML report needs matplotlib: pip install "skmm[plot]"') from error


def _axes(figsize):
    """Axes of a figure outside pyplot: drawn to PNG without touching the user's backend or figures."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize).subplots()


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
table.scores td { text-align: right; font-variant-numeric: tabular-nums; }
table.rows td { max-width: 320px; overflow-wrap: anywhere; }
img.figure { max-width: 100%; display: block; margin: 0.6em 0; }
img.thumb { width: 96px; image-rendering: pixelated; }
.absent { color: #999; font-style: italic; }
.meta { color: #666; }
"""


def _page(title, model, X, y, sections):
    fitted = modality_columns(model)
    modalities = ", ".join(fitted) if fitted is not None else "from the column prefixes"
    counts = ", ".join(f"{html.escape(str(label))}: {count}" for label, count in y.value_counts().sort_index().items())
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">{len(X)} rows · classes {counts} · modalities: {html.escape(modalities)} · '
        f"written by skmm {__version__} on {created}</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
