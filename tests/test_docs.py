"""The pages say what the code does: defaults, commands and guarantees are checked against it."""

import inspect
import re
from fractions import Fraction
from pathlib import Path

import pytest

from skmm import MultimodalClassifier

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def _value(text):
    """A default as the docs write it: ``20``, ``3e-3``, ``1/8``, or a quoted name such as ``"auto"``."""
    if text.startswith('`"'):
        return text.strip('`"')
    return float(Fraction(text)) if "/" in text else float(text)


def test_the_classifier_page_states_the_classifier_s_defaults():
    page = (ROOT / "docs" / "classifier.md").read_text()
    controls = page[page.index("## Training controls"):]
    stated = dict(re.findall(r"`(\w+)` \(([^)]+)\)", controls.split("\n\n")[1]))
    defaults = {name: p.default for name, p in inspect.signature(MultimodalClassifier).parameters.items()}
    checked = [name for name in stated if name in defaults and re.fullmatch(r'[\d./e+-]+|`"\w+"`', stated[name])]
    assert {"max_epochs", "lr", "batch_size", "dropout", "linear_weight", "linear_alpha"} <= set(checked)
    for name in checked:
        assert _value(stated[name]) == pytest.approx(defaults[name]), name


def test_the_readme_s_install_command_is_the_getting_started_page_s():
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n# install skmm.*\n(.+)\n", readme).group(1)
    assert first in (ROOT / "docs" / "getting-started.md").read_text()


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_no_page_says_loading_a_model_file_runs_code(page):
    text = " ".join(page.read_text().split())
    assert not re.search(r"[Ll]oading (a model file )?unpickles", text)
    assert "training epochs (default: 50)" not in text


def test_every_estimator_links_its_html_repr_to_its_page_of_the_api_reference():
    import tomllib

    import skmm
    from skmm._docs import DOCS_URL

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Documentation"] == DOCS_URL
    api = (ROOT / "docs" / "api.rst").read_text()
    estimators = [getattr(skmm, name) for name in skmm.__all__ if hasattr(getattr(skmm, name), "get_params")]
    assert len(estimators) == 8  # FineTuning's parameters are nested in an encoder's
    for estimator in estimators:
        name = estimator.__name__
        assert re.search(rf"^   {name}$", api, re.M), f"{name} has no page in docs/api.rst"
        link = f"{DOCS_URL}/generated/skmm.{name}.html"
        assert estimator._get_doc_link(estimator.__new__(estimator)) == link
    pipeline_html = skmm.MultimodalFusion([("text", skmm.TextEncoder(), "t")])._repr_html_()
    assert f"{DOCS_URL}/generated/skmm.TextEncoder.html" in pipeline_html
