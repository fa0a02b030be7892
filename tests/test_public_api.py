"""The public API: a sorted, documented list of names, complete for every public signature."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ptcrun
import ptcrun.errors
import ptcrun.sandbox

ROOT = Path(__file__).resolve().parents[1]
#: Where a public name may live: the front door and the documented public submodules.
PUBLIC_MODULES = (ptcrun, ptcrun.errors, ptcrun.sandbox)
#: A dotted path through a private module: ``ptcrun.runtime._turns``, ``sandbox.child._confine``.
PRIVATE_PATH = re.compile(r"\bptcrun(?:\.\w+)*\._\w+")


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_every_name_resolves(module):
    assert module.__all__ == sorted(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_export_has_a_docstring(module):
    for name in module.__all__:
        assert (getattr(module, name).__doc__ or "").strip(), name


def test_public_classes_read_as_ptcrun_names():
    assert repr(ptcrun.Limits()).startswith("Limits(")
    assert ptcrun.Limits.__module__ == "ptcrun"


def test_public_classes_keep_resolvable_type_hints():
    """Renaming ``__module__`` to ``ptcrun`` must not break ``typing.get_type_hints``."""
    for name in ptcrun.__all__:
        value = getattr(ptcrun, name)
        if inspect.isclass(value):
            typing.get_type_hints(value)


def _exported(cls: type) -> bool:
    return any(getattr(module, cls.__name__, None) is cls for module in PUBLIC_MODULES)


def _signatures(obj: Any) -> Iterator[tuple[str, Any]]:
    """Every public callable (and a class's own attributes) whose annotations users see."""
    if inspect.isclass(obj):
        yield f"{obj.__name__} attributes", obj
        yield f"{obj.__name__}.__init__", obj.__init__
        for name in dir(obj):
            if name.startswith("_"):
                continue
            raw = inspect.getattr_static(obj, name)
            if isinstance(raw, property) and raw.fget is not None:
                yield f"{obj.__name__}.{name}", raw.fget
            elif isinstance(raw, (classmethod, staticmethod)):
                yield f"{obj.__name__}.{name}", raw.__func__
            elif inspect.isfunction(raw):
                yield f"{obj.__name__}.{name}", raw
    elif callable(obj):
        yield obj.__name__, obj


def _classes_in(hint: Any) -> Iterator[type]:
    if inspect.isclass(hint):
        yield hint
    origin = typing.get_origin(hint)
    if inspect.isclass(origin):
        yield origin
    for arg in typing.get_args(hint):
        if isinstance(arg, (list, tuple)):  # Callable[[A, B], R]
            for item in arg:
                yield from _classes_in(item)
        else:
            yield from _classes_in(arg)


def test_every_type_in_a_public_signature_is_exported():
    """A user can name every ptcrun type they are handed or must hand over."""
    missing: dict[str, set[str]] = {}
    todo = [getattr(m, name) for m in (ptcrun, ptcrun.sandbox) for name in m.__all__]
    seen: set[int] = set()
    while todo:
        obj = todo.pop()
        if inspect.ismodule(obj) or id(obj) in seen:
            continue
        seen.add(id(obj))
        for where, target in _signatures(obj):
            for hint in typing.get_type_hints(target).values():
                for cls in _classes_in(hint):
                    if cls.__module__.split(".")[0] != "ptcrun":
                        continue
                    todo.append(cls)
                    if not _exported(cls):
                        missing.setdefault(f"{cls.__module__}.{cls.__qualname__}", set()).add(where)
    assert not missing, "\n".join(f"{name} (in {', '.join(sorted(w))})" for name, w in sorted(missing.items()))


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: p.name)
def test_docs_name_no_private_module(doc):
    assert PRIVATE_PATH.findall(doc.read_text(encoding="utf-8")) == []


def _user_messages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """The text of every raised exception and of every exception built to be passed on."""
    for node in ast.walk(tree):
        built = None
        if isinstance(node, ast.Raise) and node.exc is not None:
            built = node.exc
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name.endswith(("Error", "Exceeded")):
                built = node
        if built is not None:
            yield node.lineno, "\n".join(_literals(built))


def _literals(node: ast.AST) -> Iterator[str]:
    """The string literals in an expression; an f-string's fields read ``{}``."""
    if isinstance(node, ast.JoinedStr):
        yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    else:
        for child in ast.iter_child_nodes(node):
            yield from _literals(child)


def _ptcrun_class_names() -> set[str]:
    names = set()
    for path in (ROOT / "ptcrun").rglob("*.py"):
        names |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}
    return names


def test_error_messages_name_only_public_things():
    """A message's fix must be something a user can import: no private module, no private class."""
    ours = _ptcrun_class_names()
    problems = []
    for path in sorted((ROOT / "ptcrun").rglob("*.py")):
        where = path.relative_to(ROOT)
        for line, text in _user_messages(ast.parse(path.read_text())):
            problems += [f"{where}:{line}: {m}" for m in PRIVATE_PATH.findall(text)]
            for dotted in re.findall(r"\bptcrun\.(\w+)", text):
                if dotted not in ptcrun.__all__ and dotted not in ("errors", "sandbox"):
                    problems.append(f"{where}:{line}: ptcrun.{dotted}")
            for cls in re.findall(r"\b([A-Z]\w+)\.\w+", text):
                if cls in ours and not any(hasattr(m, cls) for m in PUBLIC_MODULES):
                    problems.append(f"{where}:{line}: {cls} is not exported")
    assert problems == []


def test_prompt_templates_name_no_private_module():
    for template in sorted((ROOT / "ptcrun" / "prompts").glob("*.md")):
        assert PRIVATE_PATH.findall(template.read_text(encoding="utf-8")) == [], template.name


def test_import_is_cheap_and_loads_no_provider_sdk():
    code = "import sys, ptcrun; print('anthropic' in sys.modules, 'trio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_lazy_homes_match_the_type_checking_imports():
    """``_HOMES`` (used at run time) and the ``TYPE_CHECKING`` imports (read by type checkers) agree."""
    for module in (ptcrun, ptcrun.sandbox):
        tree = ast.parse(inspect.getsource(module))
        typed = {
            alias.name: "." * node.level + (node.module or "")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level
            for alias in node.names
        }
        homes = module._HOMES
        assert {name: typed.get(name) for name in homes} == homes
        for name, home in homes.items():
            assert getattr(importlib.import_module(home, module.__name__), name) is getattr(module, name)
