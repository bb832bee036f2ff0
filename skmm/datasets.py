"""Synthetic multimodal datasets written as real files, for demos, tests and tutorials.

:func:`make_multimodal_classification` draws a labelled table whose ``image``
and ``audio`` columns point at PNG and WAV files it writes to disk, next to a
``text`` column of short English sentences and a ``number`` column. Every
modality carries part of the label, so that a model using all of them beats a
model using any one of them.
"""

import math
import os
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from ._sklearn import Interval, validate_params

__all__ = ["make_multimodal_classification"]

IMAGE_SIZE = 64
SAMPLE_RATE = 16_000
DURATION = 1.0

# One entry per class: the label, and the cue each modality shows for it.
# Images: colour and shape. Audio: pitch band and pattern (tone, bursts, chirps).
# Text: topic words. Number: a class-specific mean.
_CLASSES = [
    {"label": "cat", "colour": (220, 40, 40), "shape": "circle"},
    {"label": "dog", "colour": (40, 80, 220), "shape": "square"},
    {"label": "bird", "colour": (40, 170, 60), "shape": "triangle"},
    {"label": "fish", "colour": (240, 170, 20), "shape": "diamond"},
    {"label": "frog", "colour": (150, 60, 190), "shape": "cross"},
    {"label": "horse", "colour": (30, 190, 200), "shape": "hexagon"},
]
MAX_CLASSES = len(_CLASSES)

_TOPIC_PHRASES = {
    "cat": [
        "the kitten purred on the warm windowsill",
        "our cat chased a ball of yarn under the sofa",
        "she meowed loudly until we filled her bowl",
        "the cat sharpened its claws on the scratching post",
        "a tabby with long whiskers slept in the laundry basket",
        "the kitten pounced on a toy mouse",
        "he licked his paws clean and ignored everyone",
        "the cat rolled around in a pile of catnip",
    ],
    "dog": [
        "the puppy barked at the postman",
        "our dog fetched the stick again and again",
        "he wagged his tail as soon as he saw the leash",
        "the dog buried a bone in the garden",
        "the puppy chewed one of my slippers",
        "we took the dog for a long walk in the park",
        "she howled when the neighbours left",
        "the old retriever slept in his kennel",
    ],
    "bird": [
        "a little bird chirped on the balcony railing",
        "the sparrows built a nest under the roof",
        "a robin pecked at the birdseed with its beak",
        "the parrot flapped its wings and whistled a tune",
        "a blackbird sang from the top of the chimney",
        "we watched a flock of birds fly south",
        "feathers were scattered around the bird feeder",
        "the canary tweeted all morning in its cage",
    ],
    "fish": [
        "the goldfish swam in circles around its bowl",
        "bubbles rose from the aquarium filter",
        "a trout flicked its fins near the riverbank",
        "we fed the fish in the tank some flakes",
        "the angelfish hid among the aquarium plants",
        "silver scales flashed under the water",
        "the fish opened and closed its gills slowly",
        "a school of fish darted past the boat",
    ],
    "frog": [
        "a frog croaked all night in the swamp",
        "the tadpoles finally grew little legs",
        "a green frog hopped onto a lily pad",
        "we heard ribbit ribbit from the marsh",
        "the slimy frog jumped out of my hands",
        "a toad sat very still on a wet stone",
        "frog spawn covered the edge of the ditch",
        "the tree frog clung to the window with sticky toes",
    ],
    "horse": [
        "the horse galloped across the paddock",
        "the pony munched hay in the stable",
        "she brushed the mare's long mane",
        "the stallion neighed and stamped his hooves",
        "we put the saddle on the old horse",
        "the foal trotted next to its mother",
        "the horse drank from the trough after the ride",
        "the farrier fitted new horseshoes",
    ],
}

_NEUTRAL_PHRASES = [
    "we talked about the weather for a while",
    "the bus was late again",
    "I finished reading a long novel",
    "the kitchen smelled of fresh coffee",
    "my phone battery died at the worst moment",
    "the neighbours painted their fence",
    "it rained on and off",
    "we argued about what to cook for dinner",
    "the train was packed with commuters",
    "I lost my keys and found them in my coat",
    "the printer jammed twice",
    "we planned a trip to the seaside",
]

_OPENINGS = [
    "Yesterday", "This morning", "Last night", "On Sunday", "After lunch",
    "Around noon", "Before dinner", "During the holidays", "Earlier today", "Last week",
]
_ENDINGS = [
    ".", ". It was quite something.", ". Nobody expected that.", ". I told my sister about it.",
    ". That made me smile.", ". Then we went home.",
]

_NUMBER_SPACING = 10.0
_NUMBER_SCALE = 2.0


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_classes": [Interval(Integral, 2, MAX_CLASSES, closed="both")],
        "directory": [None, str, os.PathLike],
        "missing_rate": [Interval(Real, 0, 1, closed="both")],
        "noise": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "video": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_multimodal_classification(
    n_samples=240,
    *,
    n_classes=3,
    directory=None,
    missing_rate=0.0,
    noise=0.5,
    random_state=None,
    video=False,
):
    """Make a synthetic multimodal classification dataset backed by real files.

    Each row is an animal (the label: ``"cat"``, ``"dog"``, ``"bird"``, ...)
    seen through four modalities:

    - ``image``: path of a 64x64 PNG. A cue is a shape in the class colour
      (cat: red circle, dog: blue square, bird: green triangle, fish: orange
      diamond, frog: purple cross, horse: teal hexagon) on a textured
      background.
    - ``text``: a short English sentence. A cue mentions the animal's topic
      (purring, barking, feathers, ...).
    - ``audio``: path of a 1 s, 16 kHz mono WAV. A cue is a sound in the
      class's pitch band (cat lowest, then higher for each class) with a
      class-specific pattern (steady tone, bursts or chirps) over background
      noise.
    - ``number``: a float drawn around ``10 * (class index + 1)``.

    In each modality, independently, a share ``noise`` of the rows carries no
    cue at all: a background-only picture, a small-talk sentence, a clip of
    noise, a number drawn from the whole range. Each modality alone is thus a
    weak predictor, while together they are a strong one: with the defaults
    (3 classes, ``noise=0.5``) the best possible accuracy is about 0.67 from
    one modality and about 0.95 from all four (chance is 0.33).

    Labels are balanced (class counts differ by at most one) and the rows are
    shuffled. The same ``random_state`` gives the same frame and files with
    the same bytes (video clips: the same scenes and sound, though H.264's
    bytes may vary slightly from run to run).

    Parameters
    ----------
    n_samples : int, default=240
        Number of rows; at least ``n_classes``.
    n_classes : int, default=3
        Number of classes, from 2 to 6.
    directory : str or path-like, default=None
        Folder the files are written to (created if needed; ``images/`` and
        ``audio/`` inside it; existing files of the same names are
        overwritten). None writes to a new temporary folder, which is not
        removed afterwards.
    missing_rate : float, default=0.0
        Share of the values of each column that are set missing, chosen at
        random per column (``round(missing_rate * n_samples)`` values per
        column): None in ``image``, ``text`` and ``audio``, NaN in
        ``number``. When possible no row loses all four modalities. The
        files of missing values are still written. Other columns and the
        labels do not depend on ``missing_rate``.
    noise : float, default=0.5
        Share of the rows, in each modality independently, whose value
        carries no cue of the label. 0 makes every modality a perfect
        predictor, 1 makes the task impossible.
    random_state : int, RandomState instance or None, default=None
        Seed of everything drawn. Pass an int for reproducible output.
    video : bool, default=False
        Add a ``video`` column: paths of tiny MP4 clips (32x32, 12 frames at
        8 fps, H.264, written with PyAV: ``pip install "skmm[video]"``) in
        ``videos/``. A cue is a square in the class colour moving in the
        class's direction (cat: right, dog: down, bird: left, ...) over a grey
        background; a clip without cue shows a grey square wandering at
        random. Three clips in four carry a sound track (1 s, the ``audio``
        column's kind of sound: the class's when the clip shows the cue,
        noise otherwise); the others are silent. The other columns are the
        same as without ``video`` (missing values of ``video`` are drawn
        apart).

    Returns
    -------
    X : pandas DataFrame of shape (n_samples, 4), or (n_samples, 5) with ``video``
        Columns ``image`` (absolute PNG path, str), ``text`` (str),
        ``audio`` (absolute WAV path, str), ``number`` (float) and with
        ``video=True`` ``video`` (absolute MP4 path, str).
    y : pandas Series of shape (n_samples,)
        The string labels, named ``"label"``.

    See Also
    --------
    skmm.demo.run_demo : Cross-validates skmm on this dataset.

    Examples
    --------
    >>> import tempfile
    >>> from skmm.datasets import make_multimodal_classification
    >>> folder = tempfile.TemporaryDirectory()
    >>> X, y = make_multimodal_classification(n_samples=9, directory=folder.name, random_state=0)
    >>> list(X.columns)
    ['image', 'text', 'audio', 'number']
    >>> sorted(y.value_counts().items())
    [('bird', 3), ('cat', 3), ('dog', 3)]
    >>> X["image"][0].endswith(".png"), X["audio"][0].endswith(".wav")
    (True, True)
    >>> folder.cleanup()
    """
    if n_samples < n_classes:
        raise ValueError(
            f"n_samples={n_samples} is smaller than n_classes={n_classes}; "
            "every class needs at least one row. Raise n_samples or lower n_classes."
        )
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    label_rng, cue_rng, image_rng, text_rng, audio_rng, number_rng, missing_rng = streams

    classes = _CLASSES[:n_classes]
    y_index = label_rng.permutation(np.arange(n_samples) % n_classes)
    # per modality, True where the value shows its row's class
    cues = {m: cue_rng.random(n_samples) >= noise for m in ("image", "text", "audio", "number")}

    if directory is None:
        directory = tempfile.mkdtemp(prefix="skmm_data_")
    directory = Path(directory).expanduser().resolve()
    image_dir, audio_dir = directory / "images", directory / "audio"
    image_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(n_samples - 1)))

    images, texts, sounds, numbers = [], [], [], []
    for i, k in enumerate(y_index):
        name = f"{i:0{width}d}"
        image_path = image_dir / f"image_{name}.png"
        _draw_image(classes[k] if cues["image"][i] else None, image_rng).save(image_path, "PNG")
        images.append(str(image_path))

        texts.append(_sentence(classes[k]["label"] if cues["text"][i] else None, text_rng))

        audio_path = audio_dir / f"audio_{name}.wav"
        _write_wav(audio_path, _sound(k if cues["audio"][i] else None, audio_rng))
        sounds.append(str(audio_path))

        numbers.append(_number(k if cues["number"][i] else None, n_classes, number_rng))

    X = pd.DataFrame(
        {
            "image": pd.Series(images, dtype=object),
            "text": pd.Series(texts, dtype=object),
            "audio": pd.Series(sounds, dtype=object),
            "number": np.asarray(numbers, dtype=np.float64),
        }
    )
    if missing_rate > 0:
        _blank(X, missing_rate, missing_rng)
    if video:
        X["video"] = _write_videos(directory, y_index, classes, noise, seed, width)
        if missing_rate > 0:
            video_missing_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(9)[8])
            _blank(X[["video"]], missing_rate, video_missing_rng, target=X)
    y = pd.Series([classes[k]["label"] for k in y_index], name="label", dtype=object)
    return X, y


# --------------------------------------------------------------------------- images


def _draw_image(cls, rng):
    """A textured background, with the class's shape in the class's colour when ``cls``."""
    from PIL import Image, ImageDraw

    size = IMAGE_SIZE
    grey = rng.uniform(165, 235)
    tint = rng.uniform(-12, 12, size=3)
    pixels = np.empty((size, size, 3))
    pixels[:] = grey + tint
    texture = rng.integers(3)
    if texture == 0:  # grain
        pixels += rng.normal(0, 9, size=(size, size, 1))
    elif texture == 1:  # stripes at a random angle
        angle, period = rng.uniform(0, np.pi), rng.uniform(5, 12)
        yy, xx = np.mgrid[0:size, 0:size]
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        pixels += 10 * wave[..., None]
    else:  # soft blotches
        coarse = rng.normal(0, 14, size=(8, 8, 1))
        pixels += np.kron(coarse, np.ones((size // 8, size // 8, 1)))
    image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)

    if cls is None:  # no cue: a few grey scribbles
        for _ in range(rng.integers(2, 5)):
            points = [tuple(rng.uniform(4, size - 4, size=2)) for _ in range(2)]
            shade = int(rng.uniform(70, 130))
            draw.line(points, fill=(shade, shade, shade), width=int(rng.integers(1, 3)))
        return image

    colour = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in cls["colour"])
    radius = rng.uniform(12, 22)
    cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
    rotation = rng.uniform(0, 2 * np.pi)
    shape = cls["shape"]
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, radius, rotation), fill=colour)
    return image


def _polygon(shape, cx, cy, radius, rotation):
    if shape == "cross":
        arm = 0.35
        unit = [(arm, 1), (arm, arm), (1, arm), (1, -arm), (arm, -arm), (arm, -1),
                (-arm, -1), (-arm, -arm), (-1, -arm), (-1, arm), (-arm, arm), (-arm, 1)]
        angles = [math.atan2(v, u) + rotation for u, v in unit]
        lengths = [radius * math.hypot(u, v) / math.sqrt(2) * 1.2 for u, v in unit]
    else:
        corners = {"triangle": 3, "square": 4, "diamond": 4, "hexagon": 6}[shape]
        start = rotation if shape != "diamond" else 0.0  # a diamond stays a diamond
        angles = [start + 2 * math.pi * j / corners for j in range(corners)]
        lengths = [radius] * corners
        if shape == "diamond":
            lengths = [radius if j % 2 == 0 else radius * 0.6 for j in range(corners)]
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, lengths)]


# --------------------------------------------------------------------------- text


def _sentence(label, rng):
    phrases = _NEUTRAL_PHRASES if label is None else _TOPIC_PHRASES[label]
    opening = _OPENINGS[rng.integers(len(_OPENINGS))]
    phrase = phrases[rng.integers(len(phrases))]
    ending = _ENDINGS[rng.integers(len(_ENDINGS))]
    return f"{opening} {phrase}{ending}"


# --------------------------------------------------------------------------- audio


def _class_pitch(k):
    """Centre frequency of class ``k``: bands a factor 2**0.8 apart, from 200 Hz."""
    return 200.0 * 2.0 ** (0.8 * k)


def _sound(k, rng):
    """One second of background noise, plus the class's sound when ``k`` is not None."""
    n = int(SAMPLE_RATE * DURATION)
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.normal(0, 1, n)
    if rng.random() < 0.5:  # brown-ish noise half of the time
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        noise /= noise.std() + 1e-12
    wave = noise * rng.uniform(0.01, 0.04)
    if k is None:
        return wave

    pitch = _class_pitch(k) * 2.0 ** rng.uniform(-0.25, 0.25)
    pattern = k % 3
    if pattern == 0:  # a steady harmonic tone with vibrato
        phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / SAMPLE_RATE
        tone = sum(np.sin(h * phase) / h for h in range(1, 4))
        envelope = np.minimum(1.0, np.minimum(t, DURATION - t) / 0.05)
    elif pattern == 1:  # short harmonic bursts
        phase = 2 * np.pi * pitch * t
        tone = np.sin(phase) + 0.4 * np.sin(2 * phase)
        envelope = np.zeros(n)
        for start in np.sort(rng.uniform(0, DURATION - 0.15, size=rng.integers(3, 6))):
            length = rng.uniform(0.06, 0.12)
            envelope = np.maximum(envelope, np.exp(-((t - start - length / 2) / (length / 3)) ** 2))
    else:  # upward chirps
        period = rng.uniform(0.2, 0.3)
        local = np.mod(t, period) / period
        frequency = pitch * 2.0 ** (0.5 * local - 0.25)
        tone = np.sin(2 * np.pi * np.cumsum(frequency) / SAMPLE_RATE)
        envelope = np.sin(np.pi * local) ** 2
    tone = tone * envelope
    tone /= np.abs(tone).max() + 1e-12
    return wave + tone * rng.uniform(0.3, 0.6)


def _write_wav(path, wave):
    import soundfile

    wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
    soundfile.write(str(path), wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")


# --------------------------------------------------------------------------- numbers


def _number(k, n_classes, rng):
    if k is None:
        value = rng.uniform(_NUMBER_SPACING / 2, _NUMBER_SPACING * (n_classes + 0.5))
    else:
        value = rng.normal(_NUMBER_SPACING * (k + 1), _NUMBER_SCALE)
    return round(float(value), 2)


# --------------------------------------------------------------------------- missing values


def _blank(X, missing_rate, rng, target=None):
    """Blank ``round(missing_rate * n)`` values per column, sparing fully empty rows if possible.

    The columns of ``X`` are blanked in ``target`` (``X`` itself by default).
    """
    target = X if target is None else target
    n = len(X)
    count = int(round(missing_rate * n))
    missing = np.zeros((n, X.shape[1]), dtype=bool)
    for j in range(X.shape[1]):
        allowed = ~missing[:, :j].all(axis=1) if j == X.shape[1] - 1 else np.ones(n, bool)
        candidates = np.flatnonzero(allowed)
        if len(candidates) < count:
            candidates = np.arange(n)
        missing[rng.choice(candidates, size=count, replace=False), j] = True
    for j, column in enumerate(X.columns):
        if X[column].dtype == object:
            target.loc[missing[:, j], column] = None
        else:
            target.loc[missing[:, j], column] = np.nan


# --------------------------------------------------------------------------- video

VIDEO_SIZE = 32
VIDEO_FRAMES = 12
VIDEO_FPS = 8
#: unit steps of the moving square, one per class (right, down, left, up, and the diagonals)
_DIRECTIONS = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1)]


def _write_videos(directory, y_index, classes, noise, seed, width):
    """Write one clip per row to ``directory / "videos"``; their absolute paths as a Series."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(8)[7])
    folder = directory / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, k in enumerate(y_index):
        shows_cue = rng.random() >= noise
        frames = _moving_square(classes[k] if shows_cue else None, k, rng)
        sound = None
        if rng.random() < 0.75:
            sound = _sound(k if shows_cue else None, rng)[: SAMPLE_RATE * VIDEO_FRAMES // VIDEO_FPS]
        path = folder / f"video_{i:0{width}d}.mp4"
        _write_clip(path, frames, VIDEO_FPS, sound=sound, sr=SAMPLE_RATE)
        paths.append(str(path))
    return pd.Series(paths, dtype=object)


def _moving_square(cls, k, rng):
    """Frames ``(T, H, W, 3)``: a square in the class colour moving the class's way, or a grey one wandering."""
    size, side = VIDEO_SIZE, VIDEO_SIZE // 4
    frames = np.empty((VIDEO_FRAMES, size, size, 3), dtype=np.uint8)
    frames[:] = np.clip(rng.uniform(150, 220) + rng.uniform(-10, 10, size=3), 0, 255).astype(np.uint8)
    if cls is None:
        colour = np.full(3, int(rng.uniform(70, 130)))
        steps = rng.integers(-2, 3, size=(VIDEO_FRAMES, 2))
    else:
        colour = np.clip(np.array(cls["colour"]) + rng.integers(-20, 21, size=3), 0, 255)
        steps = np.tile(np.array(_DIRECTIONS[k]) * 2, (VIDEO_FRAMES, 1))
    position = rng.integers(side, size - 2 * side, size=2) - steps.sum(0) // 2
    for frame, step in zip(frames, steps):
        position = np.clip(position + step, 0, size - side)
        x, y = position
        frame[y : y + side, x : x + side] = colour
    return frames


def _write_clip(target, frames, fps, *, sound=None, sr=SAMPLE_RATE, container="mp4", codec="libx264",
                keyframe_interval=None, rotation=None, bit_rate=None):
    """Encode RGB ``frames`` ``(T, H, W, 3)`` (and a mono ``sound`` at ``sr`` Hz) into a video file.

    ``target`` is a path or a writable binary file. ``container`` / ``codec``:
    ``"mp4"`` / ``"libx264"`` (AAC sound), ``"webm"`` / ``"libvpx-vp9"`` (Opus
    sound at 48 kHz), ``"avi"`` / ``"mpeg4"``; ``rotation`` (degrees,
    counter-clockwise) is written as a display matrix; ``bit_rate`` (bits per
    second) sets the quality of codecs without a constant-quality default.
    """
    from .io._video import _import_av

    av = _import_av()
    frames = np.asarray(frames, dtype=np.uint8)
    options = {"threads": "1"}  # encoder threads make the bytes differ from run to run
    if keyframe_interval is not None:
        options["g"] = str(keyframe_interval)
    with av.open(str(target) if isinstance(target, (str, os.PathLike)) else target, "w",
                 format=container) as output:
        stream = output.add_stream(codec, rate=fps, options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        if rotation:
            stream.set_display_rotation(rotation)
        if sound is not None:
            audio_codec, audio_sr = ("libopus", 48000) if container == "webm" else ("aac", sr)
            audio = output.add_stream(audio_codec, rate=audio_sr)
        for picture in frames:
            # converted here, not by the encoder: PyAV's implicit conversion is not reproducible
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
        if sound is not None:
            wave = np.asarray(sound, dtype=np.float32)
            if audio_sr != sr:
                import librosa

                wave = librosa.resample(wave, orig_sr=sr, target_sr=audio_sr)
            chunk = av.AudioFrame.from_ndarray(np.clip(wave, -1, 1)[None], format="fltp", layout="mono")
            chunk.sample_rate = audio_sr
            for packet in [*audio.encode(chunk), *audio.encode()]:
                output.mux(packet)
