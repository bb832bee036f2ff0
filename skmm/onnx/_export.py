"""export_onnx: a fitted skmm pipeline as ONNX graphs and a manifest, in one folder."""

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .._version import __version__

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "export_onnx"]

FORMAT = "skmm-onnx"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OPSET = 17
#: encoder parameters that do not change the features: the runtime sets its own
RUNTIME_PARAMS = ("device", "cache", "verbose", "n_threads")

EFFICIENTNET = "Scale to 224 px on the shorter side (bilinear, only the central square resampled) and take the central 224 x 224 square, as RGB uint8 (alpha composited on white)."


def export_onnx(pipeline, path, *, opset=OPSET, overwrite=False):
    """Write a fitted pipeline as ONNX graphs plus a manifest, for ONNX Runtime or any ONNX consumer.

    The folder holds one graph per modality that has a network or a scikit-learn
    transformer, one graph for the classifier, and ``manifest.json``, which says which
    input column feeds which graph, what each graph takes and gives, and what happens
    outside the graphs (see :doc:`/deploying`). In the graphs: the image, text and audio
    models with their pooling and normalisation (and the image model of a
    :class:`~skmm.VideoEncoder`'s frames), pixel scaling for EfficientNet, every
    scikit-learn transformer of the fusion (through ``skl2onnx``), and the whole
    classifier (standardisation, absent modalities, the network, the linear member).
    Outside, in a small documented preprocessing step that :class:`skmm.onnx.OnnxModel`
    runs: reading and decoding files, resizing images, tokenising text, resampling audio
    and its model's feature extractor, sampling and pooling video frames, and
    :class:`~skmm.AudioMFCC`'s features.

    Parameters
    ----------
    pipeline : fitted Pipeline or MultimodalClassifier
        A ``Pipeline`` of a :class:`~skmm.MultimodalFusion` (or ``ColumnTransformer``)
        followed by a :class:`~skmm.MultimodalClassifier`, or a classifier alone (its
        input is then the fused features).
    path : str or path-like
        The folder to write; it must not exist yet unless ``overwrite=True``.
    opset : int, default=17
        The ONNX opset of the graphs.
    overwrite : bool, default=False
        Replace an existing folder.

    Returns
    -------
    path : pathlib.Path
        The folder written.

    Raises
    ------
    ImportError
        When the ``onnx`` extra is missing: ``pip install "skmm[onnx]"``.
    ValueError
        When the pipeline has a step ONNX export does not know (the message names it).

    Examples
    --------
    >>> import numpy as np, pandas as pd, tempfile, os
    >>> from skmm import MultimodalClassifier
    >>> from skmm.onnx import OnnxModel, export_onnx
    >>> X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 4)), columns=["a__0", "a__1", "b__0", "b__1"])
    >>> y = np.arange(40) % 2
    >>> clf = MultimodalClassifier(max_epochs=2, verbose=0, random_state=0).fit(X, y)
    >>> folder = export_onnx(clf, os.path.join(tempfile.mkdtemp(), "model"))
    >>> bool(np.allclose(OnnxModel(folder).predict_proba(X), clf.predict_proba(X), atol=1e-4))
    True
    """
    _require_onnx()
    fusion, classifier = _split(pipeline)
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; choose another folder or pass overwrite=True.")
    target.parent.mkdir(parents=True, exist_ok=True)
    # written in a temporary folder beside the target and renamed: an interrupted export leaves nothing
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        parts = [] if fusion is None else _export_fusion(fusion, staging, opset)
        manifest = _manifest(fusion, classifier, parts, opset)
        head = manifest["classifier"]
        _export_module(_classifier_graph(classifier, checks=True),
                       [(head["input"], np.float32, ("batch", manifest["n_features"]))],
                       [head["output"], *head["checks"]], staging / "classifier.onnx", opset)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _require_onnx():
    from importlib.util import find_spec

    missing = [name for name in ("onnx", "onnxruntime") if find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: pip install \"skmm[onnx]\".")


def _split(pipeline):
    """``(fusion or None, classifier)`` of what ``export_onnx`` was given, or a ValueError saying why not."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from ..classifier import MultimodalClassifier

    if isinstance(pipeline, MultimodalClassifier):
        check_is_fitted(pipeline, "net_")
        return None, pipeline
    steps = pipeline.steps if isinstance(pipeline, Pipeline) else None
    if (
        not steps
        or len(steps) != 2
        or not isinstance(steps[0][1], ColumnTransformer)
        or not isinstance(steps[-1][1], MultimodalClassifier)
    ):
        found = type(pipeline).__name__ if steps is None else " -> ".join(type(step).__name__ for _, step in steps)
        raise ValueError(
            f"export_onnx takes a Pipeline of a MultimodalFusion followed by a MultimodalClassifier, "
            f"or a fitted MultimodalClassifier; got {found}. Put other transformers inside the fusion, "
            "one per modality."
        )
    check_is_fitted(steps[-1][1], "net_")
    check_is_fitted(steps[0][1], "transformers_")
    return steps[0][1], steps[-1][1]


def _classifier_graph(classifier, checks=False):
    from ._head import ClassifierGraph

    return ClassifierGraph(classifier, checks=checks)


def _export_module(module, inputs, outputs, path, opset, examples=None):
    """Export a torch module with a dynamic batch axis (and token axis): ``inputs`` are (name, dtype, shape).

    Each axis named by a string is dynamic. The module is traced on ``examples`` (arrays, one
    per input) when given, else on arrays of ones (2 rows, 3 along the other dynamic axes).
    """
    import warnings

    import torch

    if examples is None:
        examples = [np.ones([2 if axis == "batch" else 3 if isinstance(axis, str) else axis for axis in shape],
                            dtype=dtype) for _, dtype, shape in inputs]
    examples = tuple(torch.as_tensor(example) for example in examples)
    dynamic = {name: {i: axis for i, axis in enumerate(shape) if isinstance(axis, str)} for name, _, shape in inputs}
    dynamic.update({name: {0: "batch"} for name in outputs})
    module = module.eval()
    # with gradients on: under no_grad, attention takes a fused fast path that ONNX has no operator for
    with torch.inference_mode(False), torch.enable_grad(), warnings.catch_warnings(), _graph_dump_dropped():
        warnings.simplefilter("ignore")  # the TorchScript tracer's notes about shapes it records
        target = path if hasattr(path, "write") else str(path)  # a file, or a path
        torch.onnx.export(module, examples, target, input_names=[name for name, _, _ in inputs],
                          output_names=outputs, dynamic_axes=dynamic, opset_version=opset, dynamo=False)


@contextlib.contextmanager
def _graph_dump_dropped():
    """Hold back what is written to the process's stdout (file descriptor 1) while torch exports a module.

    On an operator ONNX lacks, torch's exporter writes the whole traced graph there
    (thousands of lines, from C++) before raising: that is dropped. Anything
    written meanwhile is passed on once the export has worked.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        held.seek(0)  # the export worked
        sys.stdout.flush()
        os.write(1, held.read())


def _export_fusion(fusion, folder, opset):
    """Export every part of the fusion; returns their manifest entries, features in output order."""
    from .._fitted import fusion_parts

    if getattr(fusion, "feature_names_in_", None) is None:
        raise ValueError("export_onnx needs a fusion fitted on a DataFrame: its columns are the model's inputs.")
    parts, start = [], 0
    for position, name, transformer, selected in fusion_parts(fusion):
        part = {"modality": name, "columns": selected}
        stem = f"{position:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        part.update(_export_part(transformer, part, folder, stem, opset))
        part["features"] = [start, start + part.pop("width")]
        start = part["features"][1]
        parts.append(part)
    width = len(fusion.get_feature_names_out())
    if start != width:
        raise ValueError(f"the fusion's parts give {start} features but it outputs {width}: its remainder "
                         "or a sparse transformer cannot be exported yet.")
    return parts


def _export_part(transformer, part, folder, stem, opset):
    """The manifest entry of one fusion part, its graph and assets written into ``folder``."""
    from ..encoders import AudioEncoder, AudioMFCC, ImageEncoder, TextEncoder, VideoEncoder
    from ..encoders._base import BaseEncoder

    if isinstance(transformer, str) and transformer == "passthrough":
        return {"transformer": "passthrough", "graph": None, "width": len(part["columns"])}
    if isinstance(transformer, (ImageEncoder, TextEncoder, AudioEncoder, AudioMFCC, VideoEncoder)):
        import torch

        entry = {
            "transformer": type(transformer).__name__,
            "params": _encoder_params(transformer),
            "model_identity": transformer.model_identity_,
            "width": int(transformer.n_features_out_),
        }
        exports = ((ImageEncoder, _export_image), (TextEncoder, _export_text), (VideoEncoder, _export_video),
                   (AudioEncoder, _export_audio))
        export = next((export for kind, export in exports if isinstance(transformer, kind)), None)
        if export is not None:
            try:
                entry.update(export(_traceable(transformer), folder, stem, opset))
            except torch.onnx.errors.OnnxExporterError as exc:
                raise ValueError(
                    f"the {part['modality']!r} modality's {type(transformer).__name__}"
                    f"(model={transformer.model!r}) cannot be written as ONNX (opset {opset}): {exc}. "
                    "Choose a model ONNX can express for this column, or serve the pipeline with skmm "
                    "itself (skmm serve, skmm predict)."
                ) from exc
        else:
            entry.update(graph=None, preprocessing=(
                "AudioMFCC's features (MFCC summary statistics), computed outside the graphs with "
                "skmm.AudioMFCC(**params); see the audio section of the deployment guide."))
        return entry
    if isinstance(transformer, BaseEncoder):
        raise ValueError(
            f"the {part['modality']!r} modality uses {type(transformer).__name__}, which ONNX export does not "
            "support yet (it supports ImageEncoder, TextEncoder, AudioEncoder, AudioMFCC, VideoEncoder and "
            "scikit-learn transformers)."
        )
    return _export_sklearn(transformer, part, folder, stem, opset)


def _traceable(encoder):
    """A copy of a fitted encoder to export: on the CPU, with the weights it was fitted with.

    The graphs are traced with CPU example inputs, and an encoder fitted on a GPU holds its
    model there. The weights behind a model's name may have changed since ``fit`` (a new
    revision, a folder overwritten): exported, they would give other predictions than the
    pipeline's, so they are refused as the encoder itself refuses them
    (:class:`~skmm.exceptions.WeightsChangedError`, or a warning after
    ``skmm.load(path, weights_changed="warn")``).
    """
    from sklearn.base import clone

    copy = clone(encoder).set_params(device="cpu")
    copy.model_identity_ = encoder.model_identity_
    copy._weights_changed = getattr(encoder, "_weights_changed", "raise")
    bundle = copy._load_bundle()
    copy._check_weights(bundle)
    if hasattr(encoder, "fine_tuned_"):  # the network with its fine-tuned weights, as one plain graph
        copy.fine_tuned_, copy.fine_tune_cut_ = encoder.fine_tuned_, encoder.fine_tune_cut_
        copy._runtime_bundle = _fine_tuned_bundle(copy, bundle)
    return copy


def _fine_tuned_bundle(encoder, bundle):
    """``bundle`` with the fine-tuned network (adapters merged) in place of the frozen one."""
    from types import SimpleNamespace

    from ..encoders._bundle import weights_fingerprint
    from ..encoders._finetune import merged_network

    network = merged_network(encoder, bundle)
    fields = {**vars(bundle), "network": network, "fingerprint": weights_fingerprint(network)}
    if hasattr(bundle, "graph"):
        fields["graph"] = type(bundle.graph)(network)
    return SimpleNamespace(**fields)


def _encoder_params(encoder):
    params = {}
    for key, value in encoder.get_params().items():
        # fine-tuned weights are in the graph: ONNX Runtime runs it as a frozen model
        if key in RUNTIME_PARAMS or key.split("__")[0] == "fine_tune":
            continue
        params[key] = os.fspath(value) if isinstance(value, os.PathLike) else value
    json.dumps(params)  # every parameter that shapes the features is plain data
    return params


def _export_image(encoder, folder, stem, opset):
    bundle = encoder._bundle()
    graph = f"{stem}.onnx"
    if getattr(bundle, "processor", None) is None:  # EfficientNet: uint8 pixels into the graph
        size = encoder.image_size or bundle.image_size
        _export_module(bundle.graph, [("pixels", np.uint8, ("batch", size, size, 3))], ["features"],
                       folder / graph, opset)
        return {"graph": graph, "assets": None, "weights": bundle.fingerprint,
                "inputs": {"pixels": ["uint8", ["batch", size, size, 3]]},
                "preprocessing": EFFICIENTNET.replace("224", str(size))}
    assets = f"{stem}-processor"
    bundle.processor.save_pretrained(folder / assets)
    probe = bundle.preprocess(_blank_image(), None)
    shape = ("batch", *[int(n) for n in probe.shape])
    _export_module(bundle.graph, [("pixel_values", np.float32, shape)], ["features"], folder / graph, opset)
    return {"graph": graph, "assets": assets, "weights": bundle.fingerprint,
            "inputs": {"pixel_values": ["float32", list(shape)]},
            "preprocessing": f"The image processor saved in {assets}/ (transformers' AutoImageProcessor), on RGB images."}


def _export_video(encoder, folder, stem, opset):
    """The graph of the image model that embeds a clip's sampled frames; the sound's MFCC stay outside."""
    from ..encoders import ImageEncoder

    entry = {"graph": None, "assets": None}
    if encoder._has_frames():
        entry = _export_image(ImageEncoder(encoder.image_model, device="cpu"), folder, stem, opset)
    frames = "sampled frames decoded, then prepared as the image graph's input; the graph embeds each frame"
    entry["preprocessing"] = (
        f"{frames}, and the embeddings pooled over time ({', '.join(encoder._statistics())}) outside the graph; "
        "the sound track's MFCC statistics computed outside the graphs, as skmm.VideoEncoder(**params) does"
        if encoder._has_frames() else "the sound track's MFCC statistics, computed outside the graphs"
    )
    return entry


def _blank_image():
    from PIL import Image

    return Image.new("RGB", (64, 64))


def _export_text(encoder, folder, stem, opset):
    from ..encoders._graphs import TextFeatures

    bundle = encoder._bundle()
    graph, assets = f"{stem}.onnx", f"{stem}-tokenizer"
    bundle.tokenizer.save_pretrained(folder / assets)
    inputs = [("input_ids", np.int64, ("batch", "tokens")), ("attention_mask", np.int64, ("batch", "tokens"))]
    _export_module(TextFeatures(bundle.network, encoder.pooling, encoder.normalize), inputs, ["features"],
                   folder / graph, opset)
    return {
        "graph": graph, "assets": assets, "weights": bundle.fingerprint,
        "inputs": {"input_ids": ["int64", ["batch", "tokens"]], "attention_mask": ["int64", ["batch", "tokens"]]},
        "max_tokens": int(min(encoder.max_length, bundle.max_length)),
        "preprocessing": f"The tokenizer saved in {assets}/ (padding to the longest text of the batch, "
                         "truncation at max_tokens); an empty or missing text is an absent modality.",
    }


def _export_audio(encoder, folder, stem, opset):
    """The audio model's graph, from its feature extractor's arrays to the pooled features; the extractor saved."""
    from ..encoders._graphs import AudioFeatures

    bundle = encoder._bundle()  # a fine-tuned encoder's: its network with the trained weights
    module = AudioFeatures(bundle.network, bundle.keys, encoder.pooling, bundle.window)
    graph, assets = f"{stem}.onnx", f"{stem}-extractor"
    bundle.extractor.save_pretrained(folder / assets)
    # traced on two clips of different lengths, one second and half a second, batched as in encoding
    noise = np.random.default_rng(0).normal(0, 0.1, bundle.sr).astype(np.float32)
    clips = [(bundle.prepare(noise[:n]), n) for n in (bundle.sr, max(bundle.shortest, bundle.sr // 2))]
    batch = bundle.batch_of(clips if bundle.pads else clips[:1] * 2)
    inputs = [(key, batch[key].dtype, ("batch", *_audio_axes(clips, key, batch[key].shape[1:])))
              for key in module.inputs]
    _export_module(module, inputs, ["features"], folder / graph, opset,
                   examples=[batch[key] for key in module.inputs])
    return {
        "graph": graph, "assets": assets, "weights": bundle.fingerprint,
        "inputs": {key: [dtype.name, list(shape)] for key, dtype, shape in inputs},
        "sampling_rate": bundle.sr, "min_samples": bundle.shortest, "padding": bundle.pads,
        "preprocessing": _audio_preprocessing(bundle, assets, module, any("time" in shape for _, _, shape in inputs)),
    }


def _audio_axes(clips, key, shape):
    """The axes of input ``key`` after the batch: "time" (dynamic) where two clips' arrays differ, else the size."""
    if key not in clips[0][0]:  # n_samples: one number per clip
        return []
    sizes = zip(clips[0][0][key].shape, clips[1][0][key].shape)
    return ["time" if first != second else size for (first, second), size in zip(sizes, shape)]


def _audio_preprocessing(bundle, assets, module, timed):
    steps = [
        f"Decode the clip, mix it down to mono and resample it to {bundle.sr} Hz (as skmm.io.decode_audio does), "
        "keep its first max_duration seconds (params); an empty or missing clip is an absent modality",
        f"a clip of fewer than min_samples ({bundle.shortest}) samples is an error (too short for one frame)",
        f"the feature extractor saved in {assets}/ (transformers' AutoFeatureExtractor) on each clip",
    ]
    if bundle.random_window:
        steps.insert(2, f"a clip longer than {bundle.random_window} samples is cut to its first "
                        f"{bundle.random_window} (the extractor would pick chunks of it at random)")
    if bundle.pads:
        steps.append("a batch padded to its longest clip by the extractor's pad (attention_mask 0 on the padding)")
    elif timed:
        steps.append("clips of different lengths never share a batch (the extractor gives no attention mask, "
                     "and the model would see the padding): run them one at a time, or group equal lengths")
    else:
        steps.append("the extractor pads or cuts every clip to the model's fixed window")
    if "n_samples" in module.inputs:
        steps.append(f"n_samples: each clip's number of samples at {bundle.sr} Hz after the cut to max_duration "
                     "(the graph pools over the clip's share of the model's fixed window)")
    return "; ".join(steps) + "."


def _export_sklearn(transformer, part, folder, stem, opset):
    """A scikit-learn transformer through skl2onnx; its input is the part's columns as one tensor."""
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError as exc:
        raise ImportError('exporting scikit-learn transformers needs skl2onnx: pip install "skmm[onnx]".') from exc
    columns = part["columns"]
    numeric = not _takes_strings(transformer)
    shape = [None, len(columns)]  # a single column (a text for a vectorizer) is one column of the tensor
    input_type = FloatTensorType(shape) if numeric else StringTensorType(shape)
    options = _text_vectorizer_options(transformer, part)
    try:
        model = to_onnx(transformer, initial_types=[("input", input_type)], target_opset=opset, options=options)
    except Exception as exc:  # skl2onnx raises many types: name the part and the way out
        raise ValueError(
            f"the {part['modality']!r} modality ({type(transformer).__name__} on {columns}) could not be "
            f"converted by skl2onnx: {exc}"
        ) from exc
    graph = f"{stem}.onnx"
    (folder / graph).write_bytes(model.SerializeToString())
    width = len(transformer.get_feature_names_out())
    dtype = "float32" if numeric else "string"
    return {"transformer": type(transformer).__name__, "graph": graph, "width": width,
            "inputs": {"input": [dtype, ["batch", shape[1]]]},
            "preprocessing": f"The columns {columns} side by side as {dtype}."}


def _text_vectorizer_options(transformer, part):
    """skl2onnx's options for a CountVectorizer/TfidfVectorizer, or None; refuses what ONNX would change.

    ONNX Runtime's tokenizer knows ASCII letters only (its ``\\w``), and lowercases with a
    locale: ``C.UTF-8``, present on every glibc system. A vocabulary with a non-ASCII word
    would give other features in the graph than in scikit-learn, so it is refused.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    steps = [step for _, step in transformer.steps] if hasattr(transformer, "steps") else [transformer]
    vectorizers = [step for step in steps if isinstance(step, CountVectorizer)]
    if not vectorizers:
        return None
    for vectorizer in vectorizers:
        foreign = [word for word in vectorizer.vocabulary_ if not str(word).isascii()]
        if foreign:
            raise ValueError(
                f"the {part['modality']!r} modality's {type(vectorizer).__name__} has words that are not ASCII "
                f"({', '.join(map(repr, foreign[:3]))}...): ONNX Runtime's tokenizer splits them differently, so "
                "the exported model would not answer as the pipeline. Use a TextEncoder for this column."
            )
    return {type(vectorizer): {"locale": "C.UTF-8"} for vectorizer in vectorizers}


def _takes_strings(transformer):
    """Whether the transformer (or the first step of a pipeline) was fitted on strings, not numbers."""
    first = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
    if hasattr(first, "vocabulary_"):  # CountVectorizer, TfidfVectorizer
        return True
    categories = getattr(first, "categories_", None)
    return categories is not None and any(np.asarray(c).dtype.kind in "OUS" for c in categories)


def _manifest(fusion, classifier, parts, opset):
    from .._utils import jsonable

    features = list(getattr(classifier, "feature_names_in_", [])) or [f"x{i}" for i in range(classifier.n_features_in_)]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skmm_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "opset": opset,
        "input_columns": list(dict.fromkeys(c for part in parts for c in part["columns"])) if fusion else features,
        "classes": [jsonable(c) for c in np.asarray(classifier.classes_).tolist()],
        "n_features": len(features),
        "feature_names": [str(f) for f in features],
        "parts": parts,
        # checks: per row, a feature clipped far out of the training range; no modality at all
        "classifier": {"graph": "classifier.onnx", "input": "features", "output": "probabilities",
                       "checks": ["far_rows", "empty_rows"]},
    }
