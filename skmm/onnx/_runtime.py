"""OnnxModel: predictions from an exported folder on ONNX Runtime, without the model's torch weights."""

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from .._utils import all_missing_rows
from ._export import FORMAT, FORMAT_VERSION, MANIFEST

__all__ = ["OnnxModel"]


class OnnxModel:
    """A model exported by :func:`skmm.onnx.export_onnx`, predicting on ONNX Runtime.

    It reads the folder's manifest and graphs only: no model file is unpickled and no
    torch weights are loaded. Each row is read and decoded as the encoders do (the same
    readers, size limits, errors and missing values), each graph runs on ONNX Runtime,
    and the probabilities equal those of the exported pipeline within 1e-4.

    Parameters
    ----------
    path : str or path-like
        The folder ``export_onnx`` wrote.
    providers : list of str, default=None
        ONNX Runtime execution providers; None uses CUDA when ONNX Runtime has it, else CPU.
    n_threads : int, default=None
        Threads of each graph's run (ONNX Runtime's ``intra_op_num_threads``); None: every
        available CPU.
    cache : "memory", path or None, default="memory"
        Where the encoders keep embeddings (see :mod:`skmm.cache`). Their keys name ONNX
        Runtime: they never mix with the embeddings torch computed.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, in the order of the probability columns.
    feature_names_in_ : ndarray of str
        The input columns the model reads.
    manifest_ : dict
        The folder's manifest.

    Examples
    --------
    See :func:`skmm.onnx.export_onnx`.
    """

    def __init__(self, path, *, providers=None, n_threads=None, cache="memory"):
        self.path = Path(path)
        self.providers = providers
        self.n_threads = n_threads
        self.cache = cache
        self.manifest_ = _read_manifest(self.path)
        self.classes_ = np.asarray(self.manifest_["classes"])
        self.feature_names_in_ = np.asarray(self.manifest_["input_columns"], dtype=object)
        self._sessions, self._lock = {}, threading.RLock()
        self._encoders = {}

    def __repr__(self):
        return f"OnnxModel({os.fspath(self.path)!r})"

    # ------------------------------------------------------------------ predictions

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : DataFrame
            The input columns (``feature_names_in_``); for a model exported from a
            classifier alone, its fused features.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        from ..classifier import warn_empty_rows, warn_far_rows

        features = self.transform(X)
        head = self.manifest_["classifier"]
        checks = head.get("checks", [])
        proba, *flags = self._session(head["graph"]).run([head["output"], *checks], {head["input"]: features})
        for name, warn in (("far_rows", warn_far_rows), ("empty_rows", warn_empty_rows)):
            if name in checks:  # the classifier's own warnings, from the same rows
                warn(flags[checks.index(name)], stacklevel=3)
        proba = proba.astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted class labels (values of ``classes_``).

        Parameters
        ----------
        X : DataFrame

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def transform(self, X):
        """The fused features ``(n_samples, n_features)``, float32, as the fusion step makes them.

        Parameters
        ----------
        X : DataFrame

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X = self._check_frame(X)
        parts = self.manifest_["parts"]
        if not parts:  # exported from a classifier alone: X is already the fused features
            return np.ascontiguousarray(X.to_numpy(dtype=np.float32))
        features = np.empty((len(X), self.manifest_["n_features"]), dtype=np.float32)
        for part in parts:
            start, stop = part["features"]
            features[:, start:stop] = self._part(part, X)
        empty = all_missing_rows(X[list(self.feature_names_in_)])
        features[empty] = np.nan  # no input at all: every modality absent, as the fusion does
        return features

    # ------------------------------------------------------------------ parts

    def _check_frame(self, X):
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"OnnxModel takes a pandas DataFrame with the columns {list(self.feature_names_in_)}, "
                            f"got {type(X).__name__}.")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"X lacks the column(s) {missing} that the model reads; it has {list(X.columns)}.")
        return X

    def _part(self, part, X):
        kind = part["transformer"]
        columns = part["columns"]
        if kind == "passthrough":
            return _numbers(X[columns])
        if kind in ENCODERS:
            return self._encoder(part).transform(X[columns])
        if part["inputs"]["input"][0] == "float32":
            array = _numbers(X[columns])
        else:  # strings, a missing value as the empty string
            array = X[columns].astype(object).where(X[columns].notna(), "").astype(str).to_numpy()
        return self._session(part["graph"]).run(None, {"input": array})[0].astype(np.float32)

    def _encoder(self, part):
        """The skmm encoder of ``part``, its forward pass an ONNX Runtime session (built once)."""
        with self._lock:
            encoder = self._encoders.get(part["modality"])
            if encoder is None:
                encoder = self._encoders[part["modality"]] = ENCODERS[part["transformer"]](self, part)
        return encoder

    def _session(self, graph):
        with self._lock:
            session = self._sessions.get(graph)
            if session is None:
                session = self._sessions[graph] = _session(self.path / graph, self.providers, self.n_threads)
        return session


def _read_manifest(path):
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(f"{path} has no {MANIFEST}: it is not a folder written by skmm.onnx.export_onnx.")
    manifest = json.loads(file.read_text())
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("format_version"), int):
        raise ValueError(f"{file} is not an skmm ONNX manifest (format {manifest.get('format')!r}).")
    if manifest["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{file} was written by a newer skmm (format version {manifest['format_version']}, "
                         f"this one reads {FORMAT_VERSION}); upgrade skmm.")
    named = [manifest["classifier"]["graph"]]
    for part in manifest["parts"]:
        named += [part.get("graph"), part.get("assets")]
        if part["transformer"] not in (*ENCODERS, "passthrough") and not part.get("graph"):
            raise ValueError(f"{file}: the {part['modality']!r} modality names no graph for {part['transformer']}.")
    for name in filter(None, named):  # files of the folder itself: never a path elsewhere
        if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            raise ValueError(f"{file} names {name!r}, which is not a file of the folder itself; refused.")
    return manifest


def _session(file, providers, n_threads):
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError('running an exported model needs onnxruntime: pip install "skmm[onnx]".') from exc
    from .._threads import available_cpus

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(n_threads or available_cpus())
    options.inter_op_num_threads = 1
    # no spinning between runs: the encoders' reading, decoding and tokenising share these CPUs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if providers is None:
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in onnxruntime.get_available_providers()]
    return onnxruntime.InferenceSession(os.fspath(file), options, providers=providers)


def _numbers(frame):
    """The columns as float32, a missing value (None, NaN, pd.NA) as NaN.

    A number beyond float32's range becomes infinite here, silently: the classifier's graph clips it
    and :meth:`OnnxModel.predict_proba` warns about that row, as the classifier does.
    """
    with np.errstate(over="ignore"):
        return frame.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float32, na_value=np.nan)


# ---------------------------------------------------------------------- encoders on ONNX Runtime


def _fitted(encoder, part, bundle):
    """``encoder`` set up as fitted by the exported pipeline, computing with ``bundle``."""
    encoder._validate_params()  # the manifest's parameters obey the encoder's constraints, as in fit
    encoder._check_params()
    width = part["features"][1] - part["features"][0]
    if encoder._output_dim(bundle) != width:
        raise ValueError(f"the manifest gives the {part['modality']!r} modality {width} features, but its "
                         f"graph and parameters give {encoder._output_dim(bundle)}: the folder is inconsistent.")
    encoder._runtime_bundle = bundle
    encoder.n_features_in_ = 1
    encoder.feature_names_in_ = np.asarray(part["columns"][:1], dtype=object)
    encoder.n_features_out_ = width
    # the exported weights, computed by ONNX Runtime: a cache key of its own (see _runtime_fingerprint)
    encoder.model_identity_ = encoder._model_identity(bundle)
    return encoder


def _runtime_fingerprint(part):
    """The exported weights' fingerprint, marked as run by ONNX Runtime (float rounding differs from torch)."""
    return f"{part['weights']}+onnxruntime"


def _params(model, part):
    return {**part["params"], "cache": model.cache, "verbose": 0, "device": "cpu"}


def _image_bundle(model, part):
    """An ImageEncoder bundle whose forward pass is the part's graph (EfficientNet's or a transformers model's)."""
    from ..encoders._image import _center_crop_array

    session = model._session(part["graph"])
    name = next(iter(part["inputs"]))
    if part["assets"] is None:
        preprocess, size = _center_crop_array, part["inputs"][name][1][1]
    else:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(model.path / part["assets"], backend="pil")
        size = None

        def preprocess(image, _size):
            return processor(images=image, return_tensors="np")["pixel_values"][0].astype(np.float32)

    return SimpleNamespace(
        device="cpu", dim=session.get_outputs()[0].shape[1], image_size=size, fingerprint=_runtime_fingerprint(part),
        preprocess=preprocess, encode=lambda items: session.run(None, {name: np.stack(items)})[0],
    )


def _image_encoder(model, part):
    from ..encoders import ImageEncoder

    return _fitted(ImageEncoder(**{**_params(model, part), "n_threads": None}), part, _image_bundle(model, part))


def _video_encoder(model, part):
    from ..encoders import VideoEncoder

    encoder = VideoEncoder(**{**_params(model, part), "n_threads": None})
    sound = encoder._sound()
    bundle = SimpleNamespace(
        image=None if part["graph"] is None else _image_bundle(model, part), device="cpu",
        sound=sound, sound_tables=None if sound is None else sound._load_bundle(),
    )
    return _fitted(encoder, part, bundle)


def _text_encoder(model, part):
    from transformers import AutoTokenizer

    from ..encoders import TextEncoder

    session = model._session(part["graph"])
    tokenizer = AutoTokenizer.from_pretrained(model.path / part["assets"])
    params = _params(model, part)

    def features(input_ids, attention_mask, pooling, normalize):
        return session.run(None, {"input_ids": input_ids.astype(np.int64),
                                  "attention_mask": attention_mask.astype(np.int64)})[0]

    bundle = SimpleNamespace(
        tokenizer=tokenizer, tokenizer_lock=threading.Lock(), features=features, device="cpu",
        dim=part["features"][1] - part["features"][0], max_length=part["max_tokens"],
        fingerprint=_runtime_fingerprint(part),
    )
    return _fitted(TextEncoder(**{**params, "n_threads": None}), part, bundle)


def _audio_encoder(model, part):
    from transformers import AutoFeatureExtractor

    from ..encoders import AudioEncoder
    from ..encoders._audio_model import audio_bundle

    session = model._session(part["graph"])
    extractor = AutoFeatureExtractor.from_pretrained(model.path / part["assets"])
    dtypes = {name: np.dtype(dtype) for name, (dtype, _) in part["inputs"].items()}

    def forward(batch, pooling):  # the graph pools as the exported encoder's parameters say
        return session.run(None, {name: batch[name].astype(dtype, copy=False) for name, dtype in dtypes.items()})[0]

    encoder = AudioEncoder(**_params(model, part))
    bundle = audio_bundle(extractor, forward, name=str(encoder.model), shortest=int(part["min_samples"]),
                          dim=part["features"][1] - part["features"][0])
    bundle.fingerprint = _runtime_fingerprint(part)
    return _fitted(encoder, part, encoder._at_its_rate(bundle))


def _audio_mfcc(model, part):
    from ..encoders import AudioMFCC

    encoder = AudioMFCC(**_params(model, part))
    return _fitted(encoder, part, encoder._load_bundle())


#: the encoders an exported folder may name, and how each is set up on ONNX Runtime
ENCODERS = {"ImageEncoder": _image_encoder, "TextEncoder": _text_encoder, "AudioEncoder": _audio_encoder,
            "AudioMFCC": _audio_mfcc, "VideoEncoder": _video_encoder}
