"""Where skmm's documentation lives: the "?" of an estimator's HTML representation links there."""

#: the documentation site (also ``[project.urls]`` in pyproject.toml)
DOCS_URL = "https://skmm.readthedocs.io/en/latest"


class DocLinkMixin:
    """Link the HTML representation of an skmm estimator to its page of the API reference.

    scikit-learn draws a "?" beside each estimator of a pipeline shown in a
    notebook; it links to ``_doc_link_template`` for estimators whose top-level
    module is ``_doc_link_module``. Every public skmm estimator is documented
    as ``skmm.<name>``.

    Examples
    --------
    >>> from skmm import MultimodalClassifier
    >>> MultimodalClassifier()._get_doc_link()
    'https://skmm.readthedocs.io/en/latest/generated/skmm.MultimodalClassifier.html'
    """

    _doc_link_module = "skmm"
    _doc_link_template = DOCS_URL + "/generated/skmm.{estimator_name}.html"
