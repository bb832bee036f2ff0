"""The private parts of scikit-learn that skmm uses, imported in one place.

scikit-learn does not promise these names across releases; ``pyproject.toml`` pins the range of
scikit-learn versions skmm is tested with, and a release that moves one of them needs a change here
only.
"""

from sklearn.base import _fit_context
from sklearn.compose._column_transformer import _ERR_MSG_1DCOLUMN, _fit_transform_one
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, Options, StrOptions, validate_params
from sklearn.utils._set_output import _get_container_adapter
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "Interval",
    "Options",
    "StrOptions",
    "_ERR_MSG_1DCOLUMN",
    "_check_sample_weight",
    "_fit_context",
    "_fit_transform_one",
    "_get_container_adapter",
    "_safe_indexing",
    "validate_params",
]
