"""Deploying outside Python: export a fitted pipeline to ONNX, and run the export on ONNX Runtime.

:func:`export_onnx` writes one folder: a graph per modality, a graph for the classifier and
a manifest; :class:`OnnxModel` predicts from such a folder; :func:`register_converters`
teaches ``skl2onnx.to_onnx`` skmm's fusion step and classifier. See :doc:`/deploying`.
Needs the ``onnx`` extra: ``pip install "skmm[onnx]"``.
"""

from ._export import export_onnx
from ._runtime import OnnxModel
from ._skl2onnx import register_converters

__all__ = ["OnnxModel", "export_onnx", "register_converters"]
