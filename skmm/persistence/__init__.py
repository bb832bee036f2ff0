"""Save and load fitted pipelines, with the metadata needed to use and serve them.

A model file is a zip archive holding two members:

* ``metadata.json``: the file format, the versions of skmm, scikit-learn,
  torch and Python that wrote it, the input columns with their kind
  (``"image"``, ``"audio"``, ``"text"``, ``"numeric"``, ``"categorical"``,
  another kind registered in :mod:`skmm.kinds`, or ``"other"``), the
  modalities, the classes, and the size and sha256 of the payload;
* ``model.skops``: the estimator in the `skops <https://skops.readthedocs.io>`_
  format, which stores data, never code: loading creates only objects of
  allow-listed types (see :func:`load`). skmm encoders store their parameters
  only; their model weights are reloaded lazily from the model id or the
  installed package on first use, so loading never downloads anything by itself.
  A :class:`~skmm.MultimodalClassifier` stores its trained network as numpy
  arrays (see :mod:`skmm._net_state`) and rebuilds it on load.

Files of format version 1 (``model.pkl``, a pickle, written by pre-release
builds of skmm 0.1) are refused with a message saying what to do: nothing in
skmm ever unpickles a model file.

Writing is atomic: the archive is written to a temporary file in the target
folder and moved into place with :func:`os.replace`, so a crash never leaves a
half-written model behind and readers see either the old or the new file.

Reading is bounded: every member is checked against a size limit
(:data:`MAX_METADATA_BYTES`, :data:`MAX_PAYLOAD_BYTES`) and a compression ratio
(:data:`MAX_COMPRESSION_RATIO`) before it is inflated, and a damaged file of any
kind raises :class:`~skmm.exceptions.ModelFileError`. The checksum detects
damage, not tampering: what makes a file safe to open is the allow-list.

The parts, one module each:

``_format``
    The format: its constants and size limits (:data:`MAX_METADATA_BYTES`,
    :data:`MAX_PAYLOAD_BYTES`, :data:`MAX_COMPRESSION_RATIO`), :func:`build_metadata`,
    and the bounded reading of a file (:func:`read_metadata` and what :func:`load` reads with).
``_trust``
    What a file may hold: the allow-list :data:`TRUSTED_TYPES`, :func:`trusted_types` and
    :func:`untrusted_types`.
``_save_load``
    :func:`save` (atomic writes, the removal of stale temporary files) and :func:`load`.

The parts look names up in their own modules, never here: to patch a limit or a helper, patch
it in the module that uses it (``_format`` reads the limits, ``_save_load`` calls ``_open``).
"""

# the names of skmm.persistence (documented, or named in error messages), defined in the parts
from .._fitted import describe_inputs
from ..exceptions import ModelFileError
from ._format import (
    FORMAT,
    FORMAT_VERSION,
    MAX_COMPRESSION_RATIO,
    MAX_METADATA_BYTES,
    MAX_PAYLOAD_BYTES,
    METADATA_NAME,
    PAYLOAD_NAME,
    build_metadata,
    read_metadata,
    versions,
)
from ._save_load import STALE_TEMPORARY_SECONDS, load, save
from ._trust import TRUSTED_TYPES, trusted_types, untrusted_types

__all__ = [
    "ModelFileError", "describe_inputs", "load", "read_metadata", "save", "trusted_types", "untrusted_types",
]
