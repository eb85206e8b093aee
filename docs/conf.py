"""Sphinx configuration: MyST Markdown pages, API reference from the docstrings."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from trace_telemetry import __version__

project = "trace-telemetry"
author = "trace-telemetry developers"
copyright = "2026, trace-telemetry developers"
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = [
    "_build",
    "examples",
    "performance-results.md",
    "performance-delivery-results.md",
]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
html_theme = "alabaster"
suppress_warnings = ["myst.xref_missing"]
