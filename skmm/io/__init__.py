"""Reading images, audio and video from file paths, bytes, in-memory objects and arrays.

Each medium lives in a module of its own (``_image``, ``_audio``, ``_video``)
and offers the same small interface; import it from here. A media column takes
two steps, kept apart so that the embedding cache can be consulted before any
expensive decoding happens:

* ``read_<medium>_source(value)`` is cheap. It returns ``(content, raw)``:
  ``content`` is the bytes that identify the row for the cache (the file's
  bytes or their digest, not its path; a digest of an array's values),
  ``raw`` is what the decoder needs.
* ``decode_image(raw, ...)``, ``decode_audio(raw, ...)``,
  ``decode_video_frames(raw, ...)`` and ``decode_video_audio(raw, ...)`` do
  the heavy work and return an upright RGB PIL image, a mono float32
  waveform, uint8 frames ``(n, H, W, 3)``, and a clip's sound track as a
  mono float32 waveform (None without one).

Both raise ``ValueError`` (or ``TypeError``) with a short reason; the encoders
add the row and the file to the message.

Beside the decoders sit the cheap tests that the column-kind registry
(:mod:`skmm.kinds`) points at: ``looks_like_<medium>(head)`` recognises a file
from its first bytes, ``check_<medium>_header(data)`` refuses bytes that are
not a readable file of that medium (reading only the header), and
``is_<medium>_value(value)`` says whether an in-memory Python value holds that
medium.

Within :func:`paths_refused` (the server predicts every request inside it),
every ``read_<medium>_source`` refuses a path instead of opening the file.
Decoding a clip is bounded by the ``MAX_*`` limits of the video module and by
the deadline set with :func:`decoding_deadline`.
"""

from . import _audio, _image, _video
from ._audio import check_audio_header, decode_audio, is_audio_value, looks_like_audio, read_audio_source
from ._common import paths_refused
from ._image import (
    MAX_ASPECT_RATIO,
    check_image_header,
    decode_image,
    is_image_value,
    looks_like_image,
    read_image_source,
)

# The limits are re-exported to be read (the error messages name them as skmm.io.MAX_...); the
# readers look them up in their own module, so a test that changes one patches skmm.io._video.
from ._video import (
    MAX_DECLARED_FRAMES,
    MAX_DECODED_PACKETS,
    MAX_DECODED_PIXELS,
    MAX_DEMUXED_PACKETS,
    MAX_FRAME_RATE,
    MAX_VIDEO_SECONDS,
    DecodingTimeout,
    check_video_header,
    decode_video_audio,
    decode_video_frames,
    decoding_deadline,
    is_video_value,
    looks_like_video,
    read_video_source,
    sample_times,
    video_container,
)

__all__ = ["paths_refused", *_image.__all__, *_audio.__all__, *_video.__all__]
