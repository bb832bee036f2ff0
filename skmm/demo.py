"""A self-contained demonstration: does fusing modalities beat using any one of them?

:func:`run_demo` draws the synthetic dataset of
:func:`skmm.datasets.make_multimodal_classification` (real PNG and WAV files),
cross-validates a multimodal pipeline and one pipeline per modality, prints a
table of the scores, then fits the multimodal pipeline on all the data and
saves it. It runs offline on a CPU in about a minute for the default 240 rows.
The ``skmm demo`` command calls it.
"""

import os
import sys
import time
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch
from ._sklearn import Interval, validate_params

from ._threads import torch_threads

__all__ = ["run_demo", "demo_pipelines"]

MODEL_NAME = "model.skmm"
RESULTS_NAME = "results.csv"
FULL_SETUP = "all modalities"


def demo_pipelines(*, random_state=0, verbose=0):
    """The pipelines the demo compares: every modality together, then each alone.

    All pipelines share encoders with equal parameters, so that each file or
    sentence is encoded once (the embedding cache) however many pipelines,
    folds and fits use it. Images are encoded at 128 px (the demo images are
    64 px, so nothing is lost) by the default EfficientNet-Lite0, texts by
    all-MiniLM-L6-v2, audio by :class:`~skmm.AudioMFCC`; the number is
    standardised. The classifier is ``MultimodalClassifier(fusion="concat")``.

    Parameters
    ----------
    random_state : int or None, default=0
        Seed of the classifier.
    verbose : int, default=0
        Verbosity of the encoders (progress bars).

    Returns
    -------
    pipelines : dict
        Setup name → unfitted :class:`~sklearn.pipeline.Pipeline` with a
        ``"fusion"`` (:class:`~skmm.MultimodalFusion`) and a ``"clf"``
        (:class:`~skmm.MultimodalClassifier`) step. The first entry,
        ``"all modalities"``, uses the four columns of the demo data; the
        others (``"image only"``, ...) one each.

    Examples
    --------
    >>> from skmm.demo import demo_pipelines
    >>> list(demo_pipelines())
    ['all modalities', 'image only', 'text only', 'audio only', 'number only']
    """
    from . import AudioMFCC, ImageEncoder, MultimodalClassifier, MultimodalFusion, TextEncoder

    modalities = [
        # the images are 64 px: encoding them at 128 px rather than 224 loses nothing, 3x faster
        ("image", ImageEncoder(image_size=128, verbose=verbose), "image"),
        ("text", TextEncoder(verbose=verbose), "text"),
        ("audio", AudioMFCC(verbose=verbose), "audio"),
        ("number", StandardScaler(), ["number"]),
    ]
    classifier = MultimodalClassifier(fusion="concat", max_epochs=50, random_state=random_state)

    def pipeline(parts):
        fusion = MultimodalFusion([(name, clone(step), column) for name, step, column in parts])
        return Pipeline([("fusion", fusion), ("clf", clone(classifier))])

    pipelines = {FULL_SETUP: pipeline(modalities)}
    for part in modalities:
        pipelines[f"{part[0]} only"] = pipeline([part])
    return pipelines


@validate_params(
    {
        "output_dir": [str, os.PathLike],
        "n_samples": [Interval(Integral, 12, None, closed="left")],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "random_state": [None, Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "stream": "no_validation",
    },
    prefer_skip_nested_validation=True,
)
def run_demo(
    *,
    output_dir="skmm_demo_output",
    n_samples=240,
    cv=3,
    random_state=0,
    verbose=1,
    stream=sys.stdout,
):
    """Cross-validate skmm on synthetic multimodal data, print a table, save the model.

    The steps:

    1. :func:`~skmm.datasets.make_multimodal_classification` writes
       ``n_samples`` rows (PNG images, WAV clips, sentences, numbers; labels
       ``"cat"``, ``"dog"``, ``"bird"``) under ``output_dir/data``.
    2. Every column is encoded once (EfficientNet-Lite0 for images,
       all-MiniLM-L6-v2 for texts, MFCC statistics for audio); the embedding
       cache serves every later fit.
    3. Each setup of :func:`demo_pipelines` — all modalities fused, then each
       modality alone with the same classifier — is cross-validated with a
       stratified ``cv``-fold split; accuracy and macro F1 are reported as
       mean ± standard deviation over the folds.
    4. The table is printed and written to ``output_dir/results.csv``; the
       multimodal pipeline is fitted on all rows and saved with
       :func:`skmm.save` to ``output_dir/model.skmm``.

    Everything runs offline; with the defaults it takes about a minute on two
    CPU cores (most of it encoding the images).

    Parameters
    ----------
    output_dir : str or path-like, default="skmm_demo_output"
        Folder for the data and the model; created if needed. Files of an
        earlier run with the same ``random_state`` are overwritten with
        identical ones.
    n_samples : int, default=240
        Rows of the synthetic dataset (at least 12).
    cv : int, default=3
        Number of cross-validation folds.
    random_state : int or None, default=0
        Seed of the data, the folds and the classifier.
    verbose : int, default=1
        0 prints nothing; 1 prints progress, the table and where the model
        went, and shows encoder progress bars (on stderr) when encoding is
        slow.
    stream : file-like, default=sys.stdout
        Where the progress and the table are printed.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``results``: DataFrame indexed by setup with columns
        ``accuracy_mean``, ``accuracy_std``, ``f1_macro_mean``,
        ``f1_macro_std`` and ``seconds`` (cross-validation wall time);
        ``table``: the printed table (str); ``model_path``: the saved model
        (:class:`~pathlib.Path`); ``results_path``: the scores as CSV
        (``output_dir/results.csv``); ``data_dir``: the folder of the data files;
        ``X`` and ``y``: the dataset; ``seconds``: total wall time.

    See Also
    --------
    skmm.datasets.make_multimodal_classification, demo_pipelines

    Examples
    --------
    From a shell: ``skmm demo --output-dir skmm_demo_output``. From Python
    (a minute or so, so not run here):

    >>> from skmm.demo import run_demo
    >>> result = run_demo(output_dir="skmm_demo_output")  # doctest: +SKIP
    >>> result.results["accuracy_mean"]  # doctest: +SKIP
    """
    from . import datasets, save

    start = time.perf_counter()
    output_dir = Path(output_dir).expanduser().resolve()
    data_dir = output_dir / "data"

    def say(message=""):
        if verbose:
            print(message, file=stream, flush=True)

    say(f"skmm demo: {n_samples} synthetic rows, {cv}-fold cross-validation")
    say(f"Writing images, audio clips, texts and numbers to {data_dir} ...")
    X, y = datasets.make_multimodal_classification(
        n_samples, directory=data_dir, random_state=random_state
    )
    counts = ", ".join(f"{label}: {count}" for label, count in y.value_counts().sort_index().items())
    say(f"  {len(X)} rows, labels {counts}")

    pipelines = demo_pipelines(random_state=random_state, verbose=verbose)
    _encode_once(pipelines[FULL_SETUP], X, say)

    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    rows = {}
    for number, (setup, pipeline) in enumerate(pipelines.items(), start=1):
        say(f"[{number}/{len(pipelines)}] cross-validating {setup} ...")
        tic = time.perf_counter()
        with torch_threads(1):
            scores = cross_validate(pipeline, X, y, cv=folds, scoring=("accuracy", "f1_macro"))
        rows[setup] = {
            "accuracy_mean": float(np.mean(scores["test_accuracy"])),
            "accuracy_std": float(np.std(scores["test_accuracy"])),
            "f1_macro_mean": float(np.mean(scores["test_f1_macro"])),
            "f1_macro_std": float(np.std(scores["test_f1_macro"])),
            "seconds": time.perf_counter() - tic,
        }
    results = pd.DataFrame.from_dict(rows, orient="index")
    results.index.name = "setup"
    table = format_table(results, chance=1 / y.nunique())
    results_path = output_dir / RESULTS_NAME
    results.to_csv(results_path, float_format="%.4f")
    say()
    say(table)
    say(f"(scores also written to {results_path})")
    say()

    say(f"Fitting the {FULL_SETUP} pipeline on all {len(X)} rows ...")
    with torch_threads(1):
        model = clone(pipelines[FULL_SETUP]).fit(X, y)
    model_path = save(model, output_dir / MODEL_NAME)
    seconds = time.perf_counter() - start
    say(f"Model saved to {model_path}")
    say(f"  load it with skmm.load({str(model_path)!r}) and call .predict(X) on a DataFrame")
    say(f"  with columns {list(X.columns)}.")
    say(f"Done in {seconds:.0f} s.")
    return Bunch(
        results=results,
        table=table,
        model_path=model_path,
        results_path=results_path,
        data_dir=data_dir,
        X=X,
        y=y,
        seconds=seconds,
    )


def format_table(results, *, chance=None):
    """Format demo results as an aligned text table.

    Parameters
    ----------
    results : DataFrame
        Indexed by setup, with ``accuracy_mean``, ``accuracy_std``,
        ``f1_macro_mean`` and ``f1_macro_std`` columns.
    chance : float, optional
        Accuracy of guessing, printed under the table.

    Returns
    -------
    table : str

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.demo import format_table
    >>> results = pd.DataFrame({"accuracy_mean": [0.9], "accuracy_std": [0.01],
    ...                         "f1_macro_mean": [0.89], "f1_macro_std": [0.02]},
    ...                        index=["all modalities"])
    >>> print(format_table(results))
    setup           accuracy       macro F1
    --------------  -------------  -------------
    all modalities  0.900 ± 0.010  0.890 ± 0.020
    """
    header = ("setup", "accuracy", "macro F1")
    body = [
        (
            str(setup),
            f"{row.accuracy_mean:.3f} ± {row.accuracy_std:.3f}",
            f"{row.f1_macro_mean:.3f} ± {row.f1_macro_std:.3f}",
        )
        for setup, row in results.iterrows()
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    lines = [line(header), line(["-" * width for width in widths]), *map(line, body)]
    if chance is not None:
        lines.append(f"(chance accuracy: {chance:.3f})")
    return "\n".join(lines)


def _encode_once(pipeline, X, say):
    """Encode every column once, so that every later fit reads the embedding cache."""
    from .encoders import BaseEncoder

    for name, transformer, columns in pipeline.named_steps["fusion"].transformers:
        if not isinstance(transformer, BaseEncoder):
            continue
        say(f"Encoding the {name} column with {type(transformer).__name__} ...")
        tic = time.perf_counter()
        clone(transformer).fit_transform(X[columns])
        say(f"  done in {time.perf_counter() - tic:.1f} s")
