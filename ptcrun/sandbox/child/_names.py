"""Which names a planner program may bind, define and read: one table, read by the compile
policy (``_policy``) and the attribute guard (``_attributes``).

RestrictedPython supplies its hooks as globals named ``_x_`` (``_getattr_``, ``_write_``...),
plus its print collector ``_print`` and temporaries ``_tmpN``; the interpreter's own names are
dunders. So a program may bind any other name starting with ``_`` (``_helper``, ``_cache``)
without shadowing anything. Dunders are refused, except the special methods a program's own
class may define (:data:`SPECIAL_METHODS`) and the four it may read (``__class__``, ``__dict__``
of its own instances, ``__name__``, ``__members__`` of enums); every refused special method
carries its reason.
"""

from __future__ import annotations

import re

from RestrictedPython.transformer import FORBIDDEN_FUNC_NAMES, INSPECT_ATTRIBUTES

__all__ = [
    "READABLE_DUNDERS",
    "SPECIAL_METHODS",
    "attribute_problem",
    "is_dunder",
    "mangle",
    "method_problem",
    "name_problem",
    "private",
]

#: Special methods a program's own class may define, and read on its own classes, their
#: instances and super(): construction, text, comparison and hashing, truth and size, the
#: container and iterator protocols, context managers, calls and numeric operators. Each one
#: only changes how the program's own objects answer the program; runtime code never trusts
#: what they return (docs/security.md, "Rules for widening the language").
_BINARY = ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow",
           "lshift", "rshift", "and", "or", "xor")
SPECIAL_METHODS = frozenset(
    {
        "__init__", "__post_init__", "__repr__", "__str__", "__format__", "__bytes__",
        "__hash__", "__bool__", "__len__",
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
        "__iter__", "__next__", "__reversed__", "__contains__",
        "__getitem__", "__setitem__", "__delitem__", "__missing__",
        "__enter__", "__exit__", "__call__",
        "__neg__", "__pos__", "__abs__", "__invert__", "__round__", "__trunc__", "__floor__",
        "__ceil__", "__int__", "__float__", "__complex__", "__index__",
        *(f"__{op}__" for op in _BINARY),
        *(f"__r{op}__" for op in _BINARY),
        *(f"__i{op}__" for op in _BINARY if op != "divmod"),
    }
)
#: Dunders a program may read besides its special methods: ``x.__class__`` (what ``type(x)``
#: gives), ``self.__dict__`` (its own instances only), ``__name__`` (of classes and functions)
#: and ``__members__`` (of enum classes); the guards check the object.
READABLE_DUNDERS = SPECIAL_METHODS | {"__class__", "__dict__", "__name__", "__members__"}
_ANSWERS_EVERY_NAME = (
    "it would answer for every attribute name, including those the sandbox's own code looks up "
    "on the program's objects; define properties or ordinary methods instead"
)
_REFUSED_SPECIAL_METHODS = {
    "__getattr__": _ANSWERS_EVERY_NAME,
    "__getattribute__": _ANSWERS_EVERY_NAME,
    "__setattr__": _ANSWERS_EVERY_NAME,
    "__delattr__": _ANSWERS_EVERY_NAME,
    "__dir__": _ANSWERS_EVERY_NAME,
    "__new__": "it can return any object in place of an instance; use __init__",
    "__length_hint__": "list() reserves the memory it promises, whatever the object then "
    "yields; define __len__ or __iter__",
    "__del__": "it would run whenever the garbage collector frees the object, in the middle of "
    "other code; release things explicitly, or use a with statement",
    "__init_subclass__": "it runs when other classes are made; write a function that sets up a "
    "class and call it",
    "__class_getitem__": "annotations are not evaluated in the sandbox, so it is not needed",
    "__set_name__": "it runs when a class is made; set things up in __init__",
    "__get__": "descriptors are not available in the sandbox; use property",
    "__set__": "descriptors are not available in the sandbox; use property",
    "__delete__": "descriptors are not available in the sandbox; use property",
    "__reduce__": "objects are never pickled in the sandbox",
    "__reduce_ex__": "objects are never pickled in the sandbox",
    "__getstate__": "objects are never pickled in the sandbox",
    "__setstate__": "objects are never pickled in the sandbox",
    "__copy__": "copy.copy copies a program's objects field by field",
    "__deepcopy__": "copy.deepcopy copies a program's objects field by field",
    "__instancecheck__": "metaclasses are not available in the sandbox",
    "__subclasscheck__": "metaclasses are not available in the sandbox",
    "__mro_entries__": "it changes what a class statement derives from",
    "__class__": "an object's class cannot be changed or faked in the sandbox",
}
# Method names a class body may not bind: RestrictedPython's hooks (_getattr_, _write_...),
# its print collector and temporaries, which a class body's own names would shadow.
_HOOK_LIKE = re.compile(r"_.*_|_print|_tmp\d+")

def private(name: str) -> str:
    return f"{name!r} is not allowed: names starting with '_' are private in the sandbox"


def _reserved(name: str) -> str:
    return (f"{name!r} is not allowed: names of the form '_x_' are reserved for the sandbox; "
            "choose another name")


def name_problem(name: str, *, attribute: bool = False) -> str | None:
    # A program's own `_helper` or `_cache` shadows nothing: the hooks are all named `_x_`,
    # besides `_print` and `_tmpN`, and the interpreter's own names are dunders.
    if name.startswith("_") and name != "_" and not attribute:
        if is_dunder(name):
            return private(name)
        if _HOOK_LIKE.fullmatch(name):
            return _reserved(name)
    elif name.startswith("_") and name != "_":
        return private(name)
    if name.endswith("__roles__"):
        return f"{name!r} is not allowed: names ending in '__roles__' are reserved"
    if attribute and name in INSPECT_ATTRIBUTES:
        return f"{name!r} is not allowed: frame and code objects are hidden in the sandbox"
    if name == "breakpoint":
        return ("'breakpoint' is not available in the sandbox: there is no debugger; print() the "
                "values you want to see")
    if not attribute and name in FORBIDDEN_FUNC_NAMES:
        return f"{name!r} is a reserved name in the sandbox; choose another name"
    return None


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def attribute_problem(name: str, *, store: bool) -> str | None:
    """Why ``x.<name>`` may not be written, if it may not; the guards decide the rest at run time.

    A single-underscore name (``self._count``) passes here: ``_getattr_`` allows it only on the
    program's own objects, and ``_write_`` writes only to those. A dunder may be read only if
    it is a special method (``super().__init__``), ``__class__`` or ``__name__``, and never
    written: a special method is defined in the class body, where the policy checks it.
    """
    if name.endswith("__roles__") or name in INSPECT_ATTRIBUTES:
        return name_problem(name, attribute=True)
    if is_dunder(name):
        if store:
            return (f"{name!r} cannot be assigned in the sandbox: define special methods in the "
                    "class body")
        if name not in READABLE_DUNDERS:
            return private(name)
    return None


def method_problem(name: str) -> str | None:
    """Why a class body may not define a method of this name, if it may not."""
    if is_dunder(name):
        if name in SPECIAL_METHODS:
            return None
        reason = _REFUSED_SPECIAL_METHODS.get(
            name, "it is not among the special methods a program's class may define"
        )
        return f"special method {name!r} is not allowed in the sandbox: {reason}"
    return name_problem(name)


def mangle(name: str, classes: list[str]) -> str:
    """``__x`` inside a class body is ``_Class__x``, as the compiler spells it in stores."""
    if not classes or not name.startswith("__") or name.endswith("__") or "." in name:
        return name
    owner = classes[-1].lstrip("_")
    return f"_{owner}{name}" if owner else name
