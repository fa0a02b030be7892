"""Render the prompt templates in this folder.

Every sentence ptcrun addresses to a model lives in a ``*.md`` file here. Code passes values to
``string.Template.substitute``: braces in JSON examples need no escaping, and a missing value
raises instead of rendering blank.
"""

from __future__ import annotations

import functools
import re
import string
from importlib import resources

__all__ = ["error_hint", "render", "render_inline", "template_names"]


@functools.cache
def _text(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")


def template_names() -> list[str]:
    """The names of every template (file stem), sorted."""
    return sorted(p.name[:-3] for p in resources.files(__package__).iterdir() if p.name.endswith(".md"))


def render(name: str, **values: object) -> str:
    """Fill template ``name`` (``planner_system`` for ``planner_system.md``) with ``values``."""
    return string.Template(_text(name)).substitute({k: str(v) for k, v in values.items()})


def render_inline(name: str, **values: object) -> str:
    """Fill a one-line template for use inside other text: without the file's final newline."""
    return render(name, **values).removesuffix("\n")


@functools.cache
def _hints() -> dict[str, str]:
    sections: dict[str, str] = {}
    pattern = r"^## (\w+)\n(.*?)(?=^## |\Z)"
    for match in re.finditer(pattern, _text("errors"), flags=re.MULTILINE | re.DOTALL):
        sections[match.group(1)] = match.group(2).strip()
    return sections


def error_hint(kind: str) -> str | None:
    """The planner-facing hint for an error class name, if ``errors.md`` has one."""
    return _hints().get(kind)
