"""mkdocs hook: every page's figures and result tables rendered from experiments/results/*.json while the site builds.

The marks and the renderers are experiments/pages.py's (the README uses the same ones, and a test checks that
each committed page already holds what the JSON gives); this hook only applies them to each page's markdown.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("animevae_pages", Path(__file__).resolve().parents[2] / "experiments" / "pages.py")
pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pages)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return pages.render(markdown)
