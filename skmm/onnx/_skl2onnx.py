"""skl2onnx converters for skmm's estimators: ``skl2onnx.to_onnx`` on a skmm pipeline."""

import io

import numpy as np

__all__ = ["register_converters"]


def register_converters():
    """Teach skl2onnx skmm's fusion step and classifier, so that ``skl2onnx.to_onnx`` converts them.

    After this call, ``skl2onnx.to_onnx(pipeline, X)`` converts a pipeline whose
    :class:`~skmm.MultimodalFusion` holds scikit-learn transformers only (numbers,
    categories; the skmm encoders read files and have no skl2onnx converter: use
    :func:`skmm.onnx.export_onnx` for them), followed by a
    :class:`~skmm.MultimodalClassifier`, or a classifier alone. The classifier
    becomes its whole ONNX graph (:class:`skmm.onnx._head.ClassifierGraph`) with
    skl2onnx's two outputs: ``label`` (the class, as in ``classes_``) and
    ``probabilities``. Calling it again changes nothing.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skl2onnx import to_onnx
    >>> from skmm import MultimodalClassifier
    >>> from skmm.onnx import register_converters
    >>> X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    >>> clf = MultimodalClassifier(max_epochs=2, verbose=0, random_state=0).fit(X, np.arange(40) % 2)
    >>> register_converters()
    >>> model = to_onnx(clf, X[:1], options={"zipmap": False})
    >>> [output.name for output in model.graph.output]
    ['label', 'probabilities']
    """
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx._parse import sklearn_parsers_map
    except ImportError as exc:
        raise ImportError('skl2onnx converters need skl2onnx: pip install "skmm[onnx]".') from exc
    from sklearn.compose import ColumnTransformer

    from ..classifier import MultimodalClassifier
    from ..fusion import MultimodalFusion

    # the fusion is a ColumnTransformer whose output names say the modality: skl2onnx's own
    # ColumnTransformer parser converts it, each transformer by its own converter
    sklearn_parsers_map[MultimodalFusion] = sklearn_parsers_map[ColumnTransformer]
    update_registered_converter(
        MultimodalClassifier, "SkmmMultimodalClassifier", _classifier_shape, _convert_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )


def _classifier_shape(operator):
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    classifier = operator.raw_operator
    rows = operator.inputs[0].get_first_dimension()
    labels = np.asarray(classifier.classes_)
    label_type = StringTensorType if labels.dtype.kind in "OUS" else Int64TensorType
    operator.outputs[0].type = label_type([rows])
    operator.outputs[1].type = FloatTensorType([rows, len(labels)])


def _convert_classifier(scope, operator, container):
    """The classifier's graph as skl2onnx nodes, then its label: the class of the largest probability."""
    import onnx
    from onnx import TensorProto
    from skl2onnx.common.data_types import FloatTensorType

    from ._export import OPSET, _classifier_graph, _export_module

    classifier = operator.raw_operator
    buffer = io.BytesIO()
    width = classifier.n_features_in_
    _export_module(_classifier_graph(classifier), [("features", np.float32, ("batch", width))],
                   ["probabilities"], buffer, min(OPSET, container.target_opset))
    graph = onnx.load_from_string(buffer.getvalue())
    probabilities = operator.outputs[1]
    # the graph's one output is the operator's second (skl2onnx's classifiers give label, probabilities)
    features = operator.inputs[0].onnx_name
    if not isinstance(operator.inputs[0].type, FloatTensorType):  # e.g. double from a float64 frame
        cast = scope.get_unique_variable_name("features_float")
        container.add_node("Cast", [features], [cast], to=TensorProto.FLOAT, name=scope.get_unique_operator_name("Cast"))
        features = cast
    _embed(graph, scope, container, [features], [probabilities.onnx_name])

    index = scope.get_unique_variable_name("class_index")
    container.add_node("ArgMax", [probabilities.onnx_name], [index], axis=1, keepdims=0,
                       name=scope.get_unique_operator_name("ArgMax"))
    labels = np.asarray(classifier.classes_)
    classes = scope.get_unique_variable_name("classes")
    if labels.dtype.kind in "OUS":
        container.add_initializer(classes, TensorProto.STRING, [len(labels)],
                                  [str(label).encode() for label in labels])
    else:
        container.add_initializer(classes, TensorProto.INT64, [len(labels)], labels.astype(np.int64).tolist())
    container.add_node("Gather", [classes, index], [operator.outputs[0].onnx_name], axis=0,
                       name=scope.get_unique_operator_name("Gather"))


def _embed(model, scope, container, inputs, outputs):
    """Copy the nodes and initializers of ``model`` into skl2onnx's ``container``, every name made unique.

    ``inputs`` and ``outputs`` are the container's names for the graph's inputs and outputs, in order.
    Optional inputs left out at the end of a node's inputs (empty names) are dropped, which ONNX allows
    and skl2onnx's graph sorting needs.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    rename = {"": ""}
    names = [value.name for value in graph.input] + [tensor.name for tensor in graph.initializer]
    names += [name for node in graph.node for name in (*node.input, *node.output)]
    for name in names:
        if name not in rename:
            rename[name] = scope.get_unique_variable_name(name)
    for value, given in zip(graph.input, inputs):
        container.add_node("Identity", [given], [rename[value.name]], name=scope.get_unique_operator_name("Identity"))
    for node in graph.node:
        used = list(node.input)
        while used and used[-1] == "":  # an optional input left out at the end: not written at all
            used.pop()
        copy = helper.make_node(node.op_type, [rename[name] for name in used],
                                [rename[name] for name in node.output],
                                name=scope.get_unique_operator_name(node.op_type or "node"),
                                domain=node.domain or None)
        copy.attribute.extend(node.attribute)
        container.nodes.append(copy)
    for tensor in graph.initializer:
        renamed = TensorProto()
        renamed.CopyFrom(tensor)
        renamed.name = rename[tensor.name]
        container.initializers.append(renamed)
    for value, given in zip(graph.output, outputs):
        container.add_node("Identity", [rename[value.name]], [given], name=scope.get_unique_operator_name("Identity"))
    for opset in model.opset_import:
        container.node_domain_version_pair_sets.add((opset.domain, opset.version))
