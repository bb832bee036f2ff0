"""Sphinx configuration of skmm's documentation site.

Build it offline, warnings as errors, from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery (examples/*.py) is executed during the build, with its plots and printed output.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from skmm import __version__  # noqa: E402

project = "skmm"
author = "the skmm developers"
copyright = "the skmm developers, BSD-3-Clause"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# API reference from the docstrings
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Markdown user guide (the pages also read well on GitHub)
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Gallery: every script in examples/ is run at build time
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example, not only plot_*.py
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "min_reported_time": 0,
    "show_memory": False,
    "reset_modules": ("matplotlib", "seaborn"),
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
}

html_theme = "pydata_sphinx_theme"
html_title = f"skmm {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path = []
