"""Hypothesis-made variants of the known attacks, against the language layer and the real child.

``test_language_attacks.py`` holds one program per known escape. Here each attack becomes a
family: the attribute name is spelled many ways (split, joined, ``chr()`` codes, reversed,
``json.loads``), the call goes through ``getattr``, ``functools.partial``, ``map``, ``pmap``
and more, the program's names are renamed, and the whole is wrapped in a random context
(function, closure, lambda, comprehension, default argument, decorator, class body, method,
``try``/``except`` that prints the error, ``pmap`` callback, sort key, f-string, ...).

Whatever the variant, the program must be refused at compile time or by a guard; the refusal
must name what it refused; nothing printed, answered or raised may show a real module, a frame,
a code object, a function's globals, a file's contents or an environment variable; and the
host's ``data``, modules and tools must come out unchanged, with the host still answering.

A control property runs harmless payloads through the same contexts and spellings and requires
them to reach the end with the intended value, so the attacks cannot pass by being malformed.
A third property walks at random from the objects a program holds, through public attributes,
calls and iteration, and checks that no step hands out a module, frame, code object, raw
builtin, metaclass or namespace dict. The bulk runs in process; a sample runs in the real
child with every OS layer on.

Longer than most test files: the attack tables, the contexts and the checks share one
vocabulary (``@name@`` tokens, ``REACHED``, the leak markers) and are read together.
"""

from __future__ import annotations

import builtins
import enum
import itertools
import json
import keyword
import math
import re
import string
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun.errors import (
    BudgetExceeded,
    LimitExceeded,
    TimeLimitExceeded,
    ToolArgumentError,
    ToolError,
)
from ptcrun.sandbox import ExecResult, Sandbox, _protocol
from ptcrun.sandbox.child import _class_of
from ptcrun.sandbox.child._attributes import HIDDEN_ATTRIBUTES
from ptcrun.sandbox.child._class_of import ClassOf, TypeOf
from ptcrun.sandbox.child._compile import ProgramRejected
from ptcrun.sandbox.child._failure import Failure, PmapError
from ptcrun.sandbox.child._host_api import Budget, Remaining, Tools
from ptcrun.sandbox.child._link import Pending
from ptcrun.sandbox.child._mod_classes import is_program_class
from ptcrun.sandbox.child._modules import (
    ALLOWED_MODULES,
    ContainerType,
    ModuleProxy,
    guarded_import,
)
from ptcrun.sandbox.child._names import SPECIAL_METHODS
from ptcrun.sandbox.child._pmap import Fanout
from tests.sandbox.inproc import DATA, Done, Session

from .conftest import limits

# Secrets a leak would carry into the output: a value in this module's globals (reachable only
# through the __globals__ of the fake host functions below) and one in the host's environment.
SECRET = "fuzz-secret-in-host-globals-7f3a"
ENV_SECRET = "fuzz-secret-in-host-environment-91c2"
ORIGINAL = (json.loads, json.dumps, math.pi)
# Enough examples that each family meets each context several times; scaled by the profile.
BULK_EXAMPLES = settings.default.max_examples * 10

# -- what a leak looks like ----------------------------------------------------------------------

LEAK_MARKERS = [
    re.compile(r"<module '[\w.]+' (from '|\(built-in\)|\(frozen\)|\(namespace\))"),  # a real module
    re.compile(r"<(frame|code object|traceback object|cell) at 0x"),
    re.compile(r"'__(builtins|name|file|loader|spec|globals|code)__': "),  # globals or a module's dict
    re.compile(r"<class '(type|module|frame|code|function|traceback|cell)'>"),
    # Only dunders lead to these; a program's own objects' special methods are its own to read.
    re.compile(r"<(slot wrapper|method-wrapper) '(?!(" + "|".join(sorted(SPECIAL_METHODS)) + ")')"),
    re.compile(r"<built-in function (open|eval|exec|compile|globals|locals|vars|dir|input|"
               r"breakpoint|__import__|__build_class__|getattr|setattr|delattr|print)>"),
    re.compile(r"Type help\(\) for interactive help|root:x:0:0|environ\(\{|PATH="),
    re.compile(r"/lib/python3\.\d+/|site-packages"),
    re.compile(re.escape(SECRET) + "|" + re.escape(ENV_SECRET)),
]


def revealed(text: str) -> list[str]:
    """The pieces of text that show something a program must never see."""
    return [found.group(0) for marker in LEAK_MARKERS if (found := marker.search(text))]


# -- spelling a string without writing it ---------------------------------------------------------


@st.composite
def spelled(draw: st.DrawFn, text: str, depth: int = 0) -> str:
    """An expression that evaluates to text in the sandbox, rarely written as text itself."""
    ways = ["literal", "concat", "chars", "codes", "percent", "format", "reversed", "sep_join",
            "replace", "escapes", "json", "str_call"]
    if text == text.lower() and text.upper().lower() == text:
        ways.append("lower")
    if not set(text) & set("{}'\"\\"):
        ways.append("fstring")
    way = draw(st.sampled_from(ways))
    if way == "literal" or not text:
        return repr(text)
    if way == "concat" and len(text) > 1:
        cut = draw(st.integers(1, len(text) - 1))
        part = spelled(text[:cut], depth + 1) if depth < 2 else st.just(repr(text[:cut]))
        rest = spelled(text[cut:], depth + 1) if depth < 2 else st.just(repr(text[cut:]))
        return f"({draw(part)} + {draw(rest)})"
    if way == "chars":
        return "''.join([" + ", ".join(repr(c) for c in text) + "])"
    if way == "codes":
        return "''.join(map(chr, [" + ", ".join(str(ord(c)) for c in text) + "]))"
    if way == "percent" and len(text) > 1:
        cut = draw(st.integers(1, len(text) - 1))
        return f"('%s%s' % ({text[:cut]!r}, {text[cut:]!r}))"
    if way == "format" and len(text) > 1:
        cut = draw(st.integers(1, len(text) - 1))
        return f"'{{}}{{}}'.format({text[:cut]!r}, {text[cut:]!r})"
    if way == "reversed":
        return f"{text[::-1]!r}[::-1]"
    if way == "sep_join" and "_" in text:
        return f"'_'.join({text.split('_')!r})"
    if way == "replace":
        return f"{text.replace('_', '#')!r}.replace('#', '_')" if "#" not in text else repr(text)
    if way == "escapes" and not set(text) & set("'\\"):
        return "'" + "".join(f"\\x{ord(c):02x}" if c in "_.{}[]" else c for c in text) + "'"
    if way == "json":
        return f"json.loads({json.dumps(text)!r})"
    if way == "str_call":
        return f"str({text!r})"
    if way == "lower":
        return f"{text.upper()!r}.lower()"
    if way == "fstring":
        return "f'" + text.replace("_", "{chr(95)}") + "'"
    return repr(text)


# -- the attacks ----------------------------------------------------------------------------------


@attrs.frozen
class Attack:
    """One attack: prelude statements, then an expression (or statements) that must be refused.

    ``expect`` holds fragments of which the refusal's message (or the printed error, for
    contexts that catch it) must contain one; a compile-time rejection needs none.
    """

    family: str
    code: str
    expect: tuple[str, ...]
    prelude: str = ""
    statement: bool = False


CATCH = "def @catch@(thunk):\n    try:\n        thunk()\n    except Exception as err:\n        return err\n"
GENERATOR = "def @gen@():\n    yield 1\n"
OWN_CLASS = "class @Own@:\n    pass\n"
# Objects an attack reaches into: (expression, prelude it needs).
OBJECTS = [
    ("1", ""), ("''", ""), ("()", ""), ("data", ""), ("data[0]", ""), ("tool", ""),
    ("tool.echo", ""), ("budget", ""), ("budget.remaining", ""), ("pmap", ""), ("done", ""),
    ("Failure", ""), ("json", ""), ("json.loads", ""), ("json.JSONDecoder()", ""), ("math", ""),
    ("functools.partial(len)", ""), ("(lambda: 0)", ""), ("(x for x in [1])", ""),
    ("@gen@()", GENERATOR), ("getattr", ""), ("len", ""), ("object", ""),
    ("str", ""), ("list", ""), ("ValueError('x')", ""), ("re.compile('a')", ""),
    ("datetime.datetime(2020, 1, 1)", ""), ("collections.Counter()", ""), ("@Own@()", OWN_CLASS),
    ("@Own@", OWN_CLASS), ("@catch@(lambda: 1 / 0)", CATCH), ("@catch@(lambda: json.codecs)", CATCH),
]
PRIVATE_NAMES = [
    "__class__", "__globals__", "__dict__", "__subclasses__", "__base__", "__bases__", "__mro__",
    "__code__", "__closure__", "__self__", "__func__", "__builtins__", "__module__", "__init__",
    "__traceback__", "__context__", "__cause__", "__wrapped__", "__getattribute__",
    "__reduce_ex__", "__loader__", "__spec__", "__defaults__", "__kwdefaults__", "__import__",
    "__call__", "_link", "_members", "_type", "_callers", "_what", "_lock", "_classes", "_name",
    *sorted(HIDDEN_ATTRIBUTES),
]
# How a program can ask for an attribute; {o} is the object, {n} the spelled name.
ATTRIBUTE_READS = [
    "getattr({o}, {n})", "getattr({o}, {n}, None)", "hasattr({o}, {n})",
    "functools.partial(getattr, {o})({n})", "list(map(getattr, [{o}], [{n}]))",
    "functools.reduce(getattr, [{n}], {o})", "list(itertools.starmap(getattr, [({o}, {n})]))",
    "functools.cache(lambda @a@: getattr({o}, @a@))({n})",
    "pmap(lambda @a@: getattr({o}, @a@), [{n}], fail_fast=True)",
    "sorted([{n}], key=lambda @a@: getattr({o}, @a@))", "max([{n}], key=functools.partial(getattr, {o}))",
    "{{'k': getattr}}['k']({o}, {n})", "next(map(functools.partial(getattr, {o}), [{n}]))",
]


def _own_may_read(obj: str, name: str) -> bool:
    """Whether the rules let a program read name on obj, one of its own objects (not refused)."""
    if name == "__class__":  # of any object: what type() gives
        return True
    if "@Own@" not in obj:
        return False
    return not name.startswith("__") or name in SPECIAL_METHODS or (
        name == "__dict__" and obj.endswith("()")
    )


@st.composite
def private_attributes(draw: st.DrawFn) -> Attack:
    obj, prelude = draw(st.sampled_from(OBJECTS))
    name = draw(st.sampled_from([n for n in PRIVATE_NAMES if not _own_may_read(obj, n)]))
    if draw(st.integers(0, 5)) == 0:
        code = f"({obj}).{name}"  # plain syntax: refused when compiled, or by the guard for 'mro'
    else:
        code = draw(st.sampled_from(ATTRIBUTE_READS)).format(o=obj, n=draw(spelled(name)))
    return Attack("private attribute", code, (f"{name!r} is not allowed",), prelude)


def _unserved(module: str) -> list[str]:
    served = set(dir(guarded_import(module))) | set(guarded_import(module)._members)
    return sorted(set(dir(__import__(module))) - served)


UNSERVED = [(module, name) for module in ALLOWED_MODULES for name in _unserved(module)]


@st.composite
def module_attributes(draw: st.DrawFn) -> Attack:
    """A name the real module has and its proxy does not serve: json.codecs, re.enum, ..."""
    module, name = draw(st.sampled_from(UNSERVED))
    target, prelude = draw(st.sampled_from([(module, ""), ("@a@", f"import {module} as @a@\n")]))
    how = draw(st.sampled_from(["syntax", "getattr", "partial", "from", "from_as"]))
    if how == "from":
        return Attack("module attribute", f"from {module} import {name}", (repr(name),), statement=True)
    if how == "from_as":
        return Attack("module attribute", f"from {module} import {name} as @v@", (repr(name),),
                      statement=True)
    code = {"syntax": f"{target}.{name}", "getattr": f"getattr({target}, {draw(spelled(name))})",
            "partial": f"functools.partial(getattr, {target})({draw(spelled(name))})"}[how]
    return Attack("module attribute", code, (repr(name),), prelude)


BUILTINS = [
    ("open", "open('/etc/passwd').read()"), ("eval", "eval('1 + 1')"), ("exec", "exec('x = 1')"),
    ("compile", "compile('1', 'f', 'eval')"), ("globals", "globals()"), ("locals", "locals()"),
    ("vars", "vars(json)"), ("vars", "vars()"), ("dir", "dir()"), ("type", "type('X', (), {})"),
    ("type", "type(type(1))('X', (), {})"), ("type", "type(type)('X', (object,), {})"),
    ("input", "input()"), ("help", "help()"), ("breakpoint", "breakpoint()"),
    ("memoryview", "memoryview(b'x')"), ("id", "id(data)"),
    ("exit", "exit()"), ("quit", "quit()"), ("copyright", "copyright"),
    ("license", "license"), ("__import__", "__import__('os')"), ("__build_class__", "__build_class__"),
    ("__builtins__", "__builtins__"), ("__loader__", "__loader__"), ("BaseException", "BaseException"),
    ("SystemExit", "SystemExit(0)"), ("KeyboardInterrupt", "KeyboardInterrupt()"),
    ("GeneratorExit", "GeneratorExit"), ("BaseExceptionGroup", "BaseExceptionGroup"),
    ("ExceptionGroup", "ExceptionGroup('x', [ValueError()])"), ("aiter", "aiter"),
]


@st.composite
def forbidden_builtins(draw: st.DrawFn) -> Attack:
    name, call = draw(st.sampled_from(BUILTINS))
    forms = [call, f"[{name}][0]", f"{{'k': {name}}}['k']", f"(lambda: {name})()"]
    # type and vars are offered (one argument, the program's own objects): only their calls
    # are attacks.
    code = call if name in ("type", "vars") else draw(st.sampled_from(forms))
    return Attack("forbidden builtin", code, (repr(name), "Exec calls", "Eval calls",
                                              "type() takes exactly one argument",
                                              "vars() takes exactly one argument",
                                              "'__dict__' is not allowed"))


TEMPLATES = [
    "{0.__class__}", "{0.__globals__}", "{0.__init__.__globals__}", "{0[0]}", "{0.real}",
    "{0.__class__.__mro__[1]}", "{0:{1.__class__}}", "{0!r:{1.__globals__}}", "{0:>{1.gi_frame}}",
    "{k.__class__}", "{k[__builtins__]}", "{0:{1:{1.__class__}}}", "x{0.__class__.__base__}y",
]
FORMATS = [
    "{t}.format({a})", "str.format({t}, {a})", "getattr({t}, 'format')({a})",
    "getattr(str, {fmt})({t}, {a})", "functools.partial(str.format, {t})({a})",
    "list(map(str.format, [{t}], [{o}]))", "@S@({t}).format({a})", "@S@.format({t}, {a})",
    "{t}.format_map(@M@(k={o}))", "str.format_map({t}, {{'k': {o}}})",
    "{t}.format_map(collections.defaultdict(lambda: {o}))",
]


@st.composite
def format_traversals(draw: st.DrawFn) -> Attack:
    obj, prelude = draw(st.sampled_from(OBJECTS))
    template = draw(spelled(draw(st.sampled_from(TEMPLATES))))
    code = draw(st.sampled_from(FORMATS)).format(
        t=template, o=obj, a=f"{obj}, {obj}, k={obj}", fmt=draw(spelled("format"))
    )
    prelude += "class @S@(str):\n    pass\nclass @M@(dict):\n    pass\n"
    return Attack("format traversal", code, ("format field",), prelude)


TARGETS = [
    ("data", ["x", "count", "index"]), ("tool", ["worker", "echo", "x"]), ("tool.echo", ["x"]),
    ("budget", ["remaining", "x"]), ("budget.remaining", ["tokens", "x"]),
    ("json", ["loads", "dumps", "x"]), ("math", ["pi", "sqrt"]), ("functools", ["partial"]),
    ("collections.Counter", ["most_common"]), ("list", ["append"]), ("str", ["format", "join"]),
    ("dict", ["get"]), ("pmap", ["x"]), ("done", ["x"]), ("Failure", ["kind", "x"]),
    ("Failure(0, 'k', 'm')", ["kind"]), ("json.loads", ["x"]), ("getattr", ["x"]),
    ("ValueError", ["x"]), ("re.compile('a')", ["x"]), ("datetime.datetime", ["now"]),
]
VALUES = ["None", "(lambda *a, **k: 'owned')", "3", "'owned'"]
AUGMENTED_WRITES = ["data[0] += 'x'", "math.pi += 1", "budget.remaining.tokens += 1",
                    "functools.partial(len).args += (1,)", "datetime.datetime.max += datetime.timedelta(0)"]
WRITE_REFUSALS = ("cannot set attribute", "cannot delete attribute", "cannot assign to an item",
                  "cannot delete an item", "is not allowed", "read-only")


@st.composite
def host_writes(draw: st.DrawFn) -> Attack:
    target, names = draw(st.sampled_from(TARGETS))
    name = draw(st.sampled_from(names))
    value = draw(st.sampled_from(VALUES))
    spelled_name = draw(spelled(name))
    forms = [
        (f"{target}.{name} = {value}", True), (f"del {target}.{name}", True),
        (f"setattr({target}, {spelled_name}, {value})", False),
        (f"delattr({target}, {spelled_name})", False),
        (f"functools.partial(setattr, {target})({spelled_name}, {value})", False),
        (f"list(map(setattr, [{target}], [{spelled_name}], [{value}]))", False),
        (f"list(map(delattr, [{target}], [{spelled_name}]))", False),
    ]
    if target in ("data", "json"):
        forms += [(f"{target}[0] = {value}", True), (f"del {target}[0]", True)]
    forms.append((draw(st.sampled_from(AUGMENTED_WRITES)), True))
    code, statement = draw(st.sampled_from(forms))
    return Attack("host write", code, WRITE_REFUSALS, statement=statement)


TRIGGERS = ["json.codecs", "data.nope", "tool.nope", "re.enum", "1 / 0", "int('x')", "[][1]",
            "{}['k']", "next(iter([]))", "getattr(1, '__class__')", "collections.abc"]
EXCEPTION_LEAKS = ["obj", "__traceback__", "__context__", "__cause__", "__dict__", "__notes__",
                   "tb_frame", "__suppress_context__"]


@st.composite
def exception_leaks(draw: st.DrawFn) -> Attack:
    """AttributeError.obj (CVE-2024-47532), tracebacks and chained exceptions of caught errors."""
    trigger = draw(st.sampled_from(TRIGGERS))
    name = draw(st.sampled_from(EXCEPTION_LEAKS))
    caught = f"@catch@(lambda: {trigger})"
    code = draw(st.sampled_from([f"{caught}.{name}", f"getattr({caught}, {draw(spelled(name))})"]))
    return Attack("exception leak", code, (repr(name),), CATCH)


IMPORTS = [
    "os", "sys", "subprocess", "importlib", "builtins", "zipfile", "pathlib", "ctypes", "socket",
    "posix", "gc", "inspect", "types", "copyreg", "codecs", "marshal", "pickle", "_random",
    "_csv", "_decimal", "_hashlib", "binascii", "abc", "dataclasses.sys", "typing.sys",
    "threading", "_thread", "signal", "pdb", "shutil", "ptcrun", "ptcrun.sandbox", "json.decoder",
    "json.scanner", "collections.abc", "os.path", "encodings", "re._compiler", "importlib.util",
    "_io", "_json", "array", "resource", "asyncio", "trio",
]


@st.composite
def imports(draw: st.DrawFn) -> Attack:
    module = draw(st.sampled_from(IMPORTS))
    code = draw(st.sampled_from([
        f"import {module}", f"import {module} as @v@", f"from {module} import @v@",
        f"from {module} import *", "from . import @v@", f"from .{module} import @v@",
    ]))
    return Attack("import", code, ("not allowed", "is a reserved name"), statement=True)


HOOK_DEFINITIONS = [
    "class @C@:\n    def __getattr__(self, name):\n        return 1",
    "class @C@:\n    def __init_subclass__(cls):\n        pass",
    "class @C@:\n    def __set_name__(self, owner, name):\n        pass",
    "class @C@:\n    __slots__ = ()", "class @C@:\n    __class_getitem__ = classmethod(len)",
    "class @C@(metaclass=list):\n    pass", "_getattr_ = getattr", "@v@ = lambda _write_=1: 0",
    "def @f@(*, _print_=None):\n    pass", "@v@ = printed",
]


@st.composite
def hook_definitions(draw: st.DrawFn) -> Attack:
    return Attack("hook definition", draw(st.sampled_from(HOOK_DEFINITIONS)), (), statement=True)


# Special methods a class body may not define, and the ways it could try to.
REFUSED_SPECIAL = [
    "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__dir__", "__new__",
    "__del__", "__init_subclass__", "__set_name__", "__class_getitem__", "__reduce__",
    "__reduce_ex__", "__getstate__", "__setstate__", "__get__", "__set__", "__delete__",
    "__class__", "__dict__", "__slots__", "__instancecheck__", "__subclasscheck__",
    "__mro_entries__", "__prepare__", "__copy__", "__deepcopy__", "__weakref__", "__module__",
    "__qualname__", "__globals__", "__builtins__", "__metaclass__", "__classcell__",
]
DEFINITIONS = [
    "class @C@:\n    def {n}(self, *args):\n        return 1",
    "class @C@:\n    @staticmethod\n    def {n}(*args):\n        return 1",
    "class @C@:\n    {n} = lambda *args: 1",
    "class @C@:\n    {n} = None",
    "class @C@(dict):\n    @property\n    def {n}(self):\n        return 1",
    "class @C@:\n    pass\n@C@.{n} = lambda *args: 1",
    "class @C@:\n    def run(self):\n        self.{n} = 1",
    "def {n}(self):\n    return 1",
]


@st.composite
def special_method_definitions(draw: st.DrawFn) -> Attack:
    name = draw(st.sampled_from(REFUSED_SPECIAL))
    code = draw(st.sampled_from(DEFINITIONS)).format(n=name)
    return Attack("special method definition", code, (), statement=True)


OWN_WITH_SPECIALS = (
    "class @Own@:\n    def __init__(self):\n        self._mine = 1\n"
    "    def __repr__(self):\n        return 'own'\n"
    "    def __enter__(self):\n        return self\n"
    "    def __exit__(self, *exc):\n        return True\n"
    "class @S@(@Own@):\n    def __init__(self):\n        super().__init__()\n"
)
# From a program's own objects (and super() and type() of them) to what they must not reach.
# (__dict__ of the program's own instances is theirs to read, so it is no step beyond here.)
OWN_ROUTES = [
    "@Own@()", "@S@()", "super(@S@, @S@())", "type(@S@())", "@Own@().__class__",
    "@S@().__init__", "@S@().__repr__", "@Own@.__enter__", "super(@S@, @S@()).__init__",
    "type(@Own@)", "type(type(@Own@()))",
]
BEYOND = [
    "__globals__", "__subclasses__", "__base__", "__bases__", "__mro__", "__code__",
    "__closure__", "__self__", "__func__", "__builtins__", "__module__", "__getattribute__",
    "__reduce_ex__", "__self_class__", "__thisclass__", "__defaults__", "__wrapped__",
    "__objclass__", "__weakref__", "__class_getitem__", "__init_subclass__", "mro", "gi_frame",
]


@st.composite
def own_object_escapes(draw: st.DrawFn) -> Attack:
    """A program's own class, its subclass, super() and type() of them, then a name beyond."""
    route = draw(st.sampled_from(OWN_ROUTES))
    name = draw(st.sampled_from(BEYOND))
    read = draw(st.sampled_from([*ATTRIBUTE_READS[:6], "({o}).{p}"]))
    code = read.format(o=route, n=draw(spelled(name)), p=name)
    return Attack("own object escape", code, (f"{name!r} is not allowed", "super() argument"),
                  OWN_WITH_SPECIALS)


# Host classes a program can name or reach through type(), and private names they define.
HOST_CLASSES = {
    "type(tool)": Tools, "type(budget)": Budget, "Failure": Failure, "PmapError": PmapError,
    "ToolError": ToolError, "type(json)": ModuleProxy, "type(list)": ContainerType,
    "type(type)": TypeOf, "type(pmap)": types.MethodType, "type(budget.remaining)": Remaining,
}
HOST_PRIVATE = ["_link", "_callers", "_make_caller", "_names", "_members", "_name", "_type",
                "_payload", "_containers", "_SHOWN", "_thread_main", "_lock", "_write"]


def _defines(cls: type, name: str) -> bool:
    return any(name in vars(klass) for klass in cls.__mro__)


@st.composite
def host_class_internals(draw: st.DrawFn) -> Attack:
    """A host class, directly, through type(), or subclassed: its private names stay closed.

    Through a subclass, only the names the host class defines are attacked: any other name is
    the program's own to set, and reads as missing.
    """
    host = draw(st.sampled_from(sorted(HOST_CLASSES)))
    defined = [n for n in HOST_PRIVATE if _defines(HOST_CLASSES[host], n)]
    how = draw(st.sampled_from(["direct", "subclass", "super"] if defined else ["direct"]))
    name = draw(st.sampled_from(HOST_PRIVATE if how == "direct" else defined))
    if how == "direct":
        target, prelude = host, ""
    else:
        prelude = f"class @M@({host}):\n    pass\n"
        target = "@M@" if how == "subclass" else "super(@M@, @M@)"
    code = draw(st.sampled_from([*ATTRIBUTE_READS[:3], "({o}).{p}"])).format(
        o=target, n=draw(spelled(name)), p=name)
    expect = (f"{name!r} is not allowed", "metaclass", "cannot derive", "has no attribute",
              "is not an acceptable base type", "cannot create")
    return Attack("host class internals", code, expect, prelude)


# Objects whose class a program cannot name: type() and __class__ of each give a stand-in.
UNNAMEABLE = [
    "tool", "budget", "budget.remaining", "pmap", "json", "tool.echo", "len", "print",
    "(lambda: 0)", "(x for x in [1])", "iter([])", "{}.keys()", "None", "csv.reader([])",
    "operator.attrgetter('real')", "dataclasses.field()", "re.compile('a').scanner('a')",
]
CLASS_ROUTES = ["type({o})", "({o}).__class__", "getattr({o}, {n})", "type(type({o}))({o})",
                "[type(@v@) for @v@ in [{o}]][0]", "operator.attrgetter('__class__'[:0] + 'x') and type({o})"]
# What a program might do with a class; each must build nothing and hand out nothing.
CLASS_USES = [
    "{T}()", "{T}({o})", "{T}({o}, {o})", "functools.partial({T}, {o})()", "list(map({T}, [{o}]))",
    "collections.defaultdict({T})[1]", "json.loads('{{}}', object_hook={T})", "sorted([{o}, {o}], key={T})",
    "super({T}, {o})", "{T}.mro()", "getattr({T}, 'estimate')",
    # A copy of a class is the class (as in CPython), so a copy of a stand-in is the stand-in:
    # building from it is refused as building from the original is.
    "copy.copy({T})()", "copy.deepcopy([{T}])[0]({o})", "operator.call({T})",
    "dataclasses.dataclass({T})", "functools.total_ordering({T})", "json.dumps([1], cls={T})",
    "collections.namedtuple('P', 'a')._make([{T}])[0]()",
]


@st.composite
def class_of_uses(draw: st.DrawFn) -> Attack:
    """type() or __class__ of an object the sandbox made, then built, derived from, or read."""
    obj = draw(st.sampled_from(UNNAMEABLE))
    route = draw(st.sampled_from(CLASS_ROUTES)).format(o=obj, n=draw(spelled("__class__")))
    expect = ("cannot be made", "cannot derive", "super() argument 1 must be a type",
              "is not available in the sandbox", "'mro' is not allowed",
              "decorates the program's own classes", "copy.copy() copies")
    if draw(st.booleans()):
        return Attack("class of a host object", "class @M@(@S@):\n    pass", expect,
                      f"@S@ = {route}\n", statement=True)
    use = draw(st.sampled_from(CLASS_USES)).format(T="@S@", o=obj)
    return Attack("class of a host object", use, expect, f"@S@ = {route}\n")


ATTACKS = st.one_of(private_attributes(), module_attributes(), forbidden_builtins(),
                    format_traversals(), host_writes(), exception_leaks(), imports(),
                    hook_definitions(), special_method_definitions(), own_object_escapes(),
                    host_class_internals(), class_of_uses())


# -- the contexts an attack is wrapped in ---------------------------------------------------------

# Statement contexts: @BODY@ stands for the attack's statements, indented as the marker is.
STATEMENT_CONTEXTS = {
    "top level": "@BODY@",
    "function": "def @f@():\n    @BODY@\n@f@()",
    "closure": "def @f@():\n    @w@ = 1\n    def @g@():\n        nonlocal @w@\n        @BODY@\n"
               "    return @g@\n@f@()()",
    "method": "class @C@:\n    def run(self):\n        @BODY@\n@C@().run()",
    "initializer": "class @C@:\n    def __init__(self):\n        @BODY@\n@C@()",
    "property": "class @C@:\n    @property\n    def value(self):\n        @BODY@\n@C@().value",
    "classmethod": "class @C@:\n    @classmethod\n    def make(cls):\n        @BODY@\n@C@.make()",
    "class body": "class @C@:\n    @BODY@",
    "nested class body": "class @C@:\n    class @D@:\n        @BODY@",
    "decorator": "def @f@(fn):\n    @BODY@\n    return fn\n@@f@\ndef @g@():\n    pass",
    "try/except printing the error": "try:\n    @BODY@\nexcept Exception as @e@:\n"
                                     "    print('CAUGHT', @e@, repr(@e@), @e@.args)",
    "finally": "try:\n    pass\nfinally:\n    @BODY@",
    "except handler": "try:\n    1 / 0\nexcept ZeroDivisionError:\n    @BODY@",
    "loop": "for @w@ in range(1):\n    @BODY@",
    "while": "while True:\n    @BODY@\n    break",
    "generator function": "def @f@():\n    @BODY@\n    yield 1\nlist(@f@())",
    "pmap callback": "def @f@(@w@):\n    @BODY@\nprint('CAUGHT', pmap(@f@, [1]))",
    "nested pmap": "def @f@(@w@):\n    @BODY@\nprint('CAUGHT', pmap(lambda @v@: pmap(@f@, [@v@]), [1]))",
    "pcalls": "def @f@():\n    @BODY@\nprint('CAUGHT', pcalls(@f@))",
    "sort key": "def @f@(@w@):\n    @BODY@\n    return 0\nsorted([1, 2], key=@f@)",
    "map callback": "def @f@(@w@):\n    @BODY@\nlist(map(@f@, [1]))",
    "cached function": "@functools.lru_cache\ndef @f@():\n    @BODY@\n@f@()",
    "json object hook": "def @f@(@w@):\n    @BODY@\njson.loads('{}', object_hook=@f@)",
    "re.sub callback": "def @f@(@w@):\n    @BODY@\n    return ''\nre.sub('a', @f@, 'a')",
    "defaultdict factory": "def @f@():\n    @BODY@\ncollections.defaultdict(@f@)[0]",
}
# Expression contexts: @EXPR@ stands for the attack's expression.
EXPRESSION_CONTEXTS = {
    "lambda": "(lambda: @EXPR@)()",
    "lambda default": "(lambda @v@=@EXPR@: @v@)()",
    "default argument": "def @f@(@v@=@EXPR@):\n    return @v@\n@f@()",
    "keyword-only default": "def @f@(*, @v@=@EXPR@):\n    pass",
    "list comprehension": "[@EXPR@ for @v@ in [1]]",
    "nested comprehension": "[[@EXPR@ for @w@ in [1]] for @v@ in [1]]",
    "dict comprehension": "{@v@: @EXPR@ for @v@ in [1]}",
    "set comprehension": "{@EXPR@ for @v@ in [1]}",
    "generator expression": "list(@EXPR@ for @v@ in [1])",
    "next of a generator": "next(@EXPR@ for @v@ in [1])",
    "decorator expression": "@(lambda fn: [@EXPR@] and fn)\ndef @f@():\n    pass",
    "class base": "class @C@([@EXPR@] and object):\n    pass",
    "pmap lambda": "print('CAUGHT', pmap(lambda @v@: @EXPR@, [1]))",
    "pmap fail_fast": "pmap(lambda @v@: @EXPR@, [1, 2], fail_fast=True)",
    "pcalls lambda": "print('CAUGHT', pcalls(lambda: @EXPR@))",
    "sorted key": "sorted([1, 2], key=lambda @v@: [@EXPR@] and 0)",
    "max key": "max([1], key=lambda @v@: @EXPR@)",
    "map lambda": "list(map(lambda @v@: @EXPR@, [1]))",
    "filter lambda": "list(filter(lambda @v@: @EXPR@, [1]))",
    "f-string": 'f"{@EXPR@}"',
    "f-string format spec": 'f"{1:{[@EXPR@] and 1}}"',
    "walrus": "(@v@ := @EXPR@)",
    "conditional": "(@EXPR@ if data else None)",
    "subscript": "{'k': @EXPR@}['k']",
    "callable iterator": "next(iter(lambda: [@EXPR@], 0))",
    "reduce": "functools.reduce(lambda @v@, @w@: @EXPR@, [1, 2])",
    "partial": "functools.partial(lambda: @EXPR@)()",
    "template mapping": "string.Template('$x').substitute(collections.defaultdict(lambda: str(@EXPR@)))",
}
PRELUDE = (
    f"import {', '.join(ALLOWED_MODULES)}\n"
    "def @r@(value):\n    print('REACHED', repr(value))\n    return value\n"
)
TOKENS = ("r", "f", "g", "C", "D", "v", "w", "e", "a", "S", "M", "catch", "gen", "Own")
_TAKEN = (
    set(dir(builtins))
    | set(ALLOWED_MODULES)
    | {"data", "tool", "budget", "pmap", "pcalls", "done", "fail", "Failure", "PmapError",
       "ToolError", "ToolArgumentError", "LimitExceeded", "BudgetExceeded", "TimeLimitExceeded",
       "printed", "keep", "x", "k", "fn", "err", "thunk", "value", "cls", "self", "run", "make"}
)


def _fresh_name(name: str) -> bool:
    return not (keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _TAKEN)


# Names for renaming: short and long, snake and camel case, one that is just '_'.
NAME_POOL = [
    name for name in (
        "a", "b", "q", "t", "u", "y", "z", "_", "ab", "ba", "zz", "x1", "k2", "f_", "el", "acc",
        "obj", "tmp", "val", "res", "out", "mod", "item", "node", "walk", "thing", "inner", "outer",
        "helper", "payload", "a_b", "gen_", "Cls", "Obj", "X", "Y", "Z", "Klass", "Meta", "Base",
        "Sub", "C1", "C2", "MyDict", "probe", "target", "step", "leak", "grab", "seen",
    )
    if _fresh_name(name)
]
NAMES = st.lists(st.sampled_from(NAME_POOL), min_size=len(TOKENS), max_size=len(TOKENS), unique=True)


def _place(template: str, marker: str, text: str) -> str:
    """Put text where marker stands in template, indenting its lines as the marker is."""
    lines = []
    for line in template.split("\n"):
        if marker in line and line.strip() == marker:
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(indent + part for part in text.split("\n"))
        else:
            lines.append(line.replace(marker, text))
    return "\n".join(lines)


def _fits_fstring(expression: str) -> bool:
    return not set(expression) & set("\"\\\n#")


@st.composite
def wrapped(draw: st.DrawFn, attack: Attack) -> tuple[str, str]:
    """(context name, program): the attack in a random context, with its names renamed."""
    body = attack.code + "\n@r@('after')" if attack.statement else f"@r@({attack.code})"
    contexts = [(name, _place(t, "@BODY@", body)) for name, t in STATEMENT_CONTEXTS.items()]
    if not attack.statement:
        expression = f"@r@({attack.code})"
        contexts += [
            (name, _place(t, "@EXPR@", expression)) for name, t in EXPRESSION_CONTEXTS.items()
            if _fits_fstring(expression) or "f-string" not in name
        ]
    name, program = draw(st.sampled_from(contexts))
    program = PRELUDE + attack.prelude + program + "\n"
    for token, fresh in zip(TOKENS, draw(NAMES), strict=True):
        program = program.replace(f"@{token}@", fresh)
    return name, program


# -- running a program and judging the outcome ----------------------------------------------------


@attrs.frozen
class Outcome:
    status: str  # "rejected", "error" or "ok"
    kind: str = ""
    message: str = ""
    output: str = ""


class FakeLink:
    """Answers the real ``tool`` and ``budget`` objects at once, as the host would."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}

    def open_request(self) -> Pending:
        pending = Pending(next(self._ids))
        self._pending[pending.id] = pending
        return pending

    def send(self, frame: _protocol.Frame) -> None:
        if isinstance(frame, _protocol.BudgetQuery):
            budget = {"tokens": 1000, "turns": 3, "seconds": 60.0, "cost": 0.0}
            self._pending.pop(frame.id).resolve(_protocol.Reply(frame.id, True, budget))
        elif isinstance(frame, _protocol.Call):
            value = (frame.args or [None])[0]
            self._pending.pop(frame.id).resolve(_protocol.Reply(frame.id, True, value))


def host_session(**extra: Any) -> Session:
    """An in-process namespace with the child's host names, backed by the real host objects."""
    link = FakeLink()
    fanout = Fanout(send=link.send, default_concurrency=4, default_timeout=5.0, max_items=100, max_threads=8)
    return Session(
        tool=Tools(link, ["echo"]), budget=Budget(link), pmap=fanout.pmap, pcalls=fanout.pcalls,
        Failure=Failure, PmapError=PmapError, ToolError=ToolError, ToolArgumentError=ToolArgumentError,
        LimitExceeded=LimitExceeded, BudgetExceeded=BudgetExceeded, TimeLimitExceeded=TimeLimitExceeded,
        **extra,
    )


def run_in_process(program: str, namespace: Session | None = None) -> Outcome:
    namespace = namespace or host_session()
    start = len(namespace.writes)
    try:
        namespace.run(program)
    except ProgramRejected as exc:
        return Outcome("rejected", exc.kind, exc.message)
    except (Exception, Done) as exc:  # every way a program can end is an outcome
        return Outcome("error", type(exc).__name__, str(exc), "".join(namespace.writes[start:]))
    return Outcome("ok", output="".join(namespace.writes[start:]))


def from_child(result: ExecResult) -> Outcome:
    if result.status != "error":
        return Outcome(result.status, output=result.output + repr(result.answer))
    assert result.error is not None
    status = "rejected" if result.error.kind in ("NotAllowed", "SyntaxError") else "error"
    return Outcome(status, result.error.kind, result.error.message, result.output)


def assert_refused(attack: Attack, program: str, outcome: Outcome) -> None:
    where = f"\n--- program ---\n{program}\n--- outcome ---\n{outcome}"
    assert "REACHED" not in outcome.output, f"the attack ran to its end{where}"
    assert not revealed(outcome.output + outcome.message), f"leaked {revealed(outcome.output + outcome.message)}{where}"
    if outcome.status == "rejected":
        assert outcome.kind == "NotAllowed", f"the generated program is not valid Python{where}"
    else:
        text = outcome.message + outcome.output
        assert not attack.expect or any(f in text for f in attack.expect), f"refused for another reason{where}"


HOST_CHECK = (
    "import json, math\n"
    "print(json.loads('[1]'), json.dumps([2]), math.pi, tool.echo('x'), list(data), repr(tool),"
    " budget.remaining.tokens)"
)
HOST_ANSWER = f"[1] [2] {math.pi} x {list(DATA)} <tools: echo> 1000\n"


def assert_host_intact(namespace: Session) -> None:
    assert namespace.host["data"] is DATA
    assert (json.loads, json.dumps, math.pi) == ORIGINAL
    assert guarded_import("json").loads is json.loads and guarded_import("math").pi == math.pi
    assert dir(namespace.host["tool"]) == ["echo"]
    assert run_in_process(HOST_CHECK, namespace) == Outcome("ok", output=HOST_ANSWER)


@pytest.fixture(scope="module", autouse=True)
def secret_in_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PTCRUN_FUZZ_SECRET", ENV_SECRET)
        yield


# -- the properties, in process -------------------------------------------------------------------


@settings(max_examples=BULK_EXAMPLES, deadline=None)
@given(data=st.data())
def test_attack_variants_are_refused_in_process(data: st.DataObject) -> None:
    attack = data.draw(ATTACKS, label="attack")
    _context, program = data.draw(wrapped(attack), label="context and program")
    namespace = host_session()
    assert_refused(attack, program, run_in_process(program, namespace))
    assert_host_intact(namespace)


HARMLESS_TEXTS = ["__class__", "gi_frame", "{0.__class__}", "codecs", "/etc/passwd", "__builtins__", "a_b"]


@st.composite
def harmless_payloads(draw: st.DrawFn) -> tuple[Attack, str | None]:
    """The attacks' own shapes aimed at something allowed: (payload, text it must evaluate to)."""
    kind = draw(st.sampled_from(["spelling", "read", "format", "write"]))
    if kind == "spelling":
        text = draw(st.sampled_from(HARMLESS_TEXTS))
        return Attack("control", draw(spelled(text)), ()), text
    if kind == "read":
        code = draw(st.sampled_from(ATTRIBUTE_READS)).format(o="data[0]", n=draw(spelled("upper")))
        return Attack("control", f"str({code})", ()), None
    if kind == "format":
        form = draw(st.sampled_from(FORMATS))
        template = "{k}" if "format_map" in form else "{0}" if "map(" in form else "{0}-{k}"
        code = form.format(t=draw(spelled(template)), o="'v'", a="'v', 'w', k='v'", fmt=draw(spelled("format")))
        return Attack("control", f"str({code})", (), "class @S@(str):\n    pass\nclass @M@(dict):\n    pass\n"), None
    code = draw(st.sampled_from([
        "setattr(@Own@(), {n}, 1)", "functools.partial(setattr, @Own@)({n}, 1)",
        "list(map(setattr, [@Own@], [{n}], [1]))",
    ])).format(n=draw(spelled("x")))
    return Attack("control", f"str({code})", (), OWN_CLASS), None


@settings(max_examples=BULK_EXAMPLES // 2, deadline=None)
@given(data=st.data())
def test_harmless_payloads_run_to_the_end_in_every_context(data: st.DataObject) -> None:
    """The contexts and spellings are valid programs that do evaluate the payload."""
    attack, text = data.draw(harmless_payloads(), label="payload")
    _context, program = data.draw(wrapped(attack), label="context and program")
    outcome = run_in_process(program)
    assert outcome.status == "ok", f"{program}\n{outcome}"
    reached = [line for line in outcome.output.splitlines() if line.startswith("REACHED")]
    assert reached, f"{program}\n{outcome}"
    if text is not None:
        assert set(reached) == {f"REACHED {text!r}"}, program


# -- random walks over what a program can reach ---------------------------------------------------

WALK_ROOTS = [
    *OBJECTS,
    ("budget.remaining", ""), ("pcalls", ""), ("fail", ""), ("PmapError", ""),
    ("ToolError('x', tool='t')", ""), ("json.JSONEncoder()", ""), ("re.match('(a)', 'a')", ""),
    ("functools.lru_cache(len)", ""), ("itertools.count()", ""), ("collections.defaultdict(list)", ""),
    ("collections.deque([1])", ""), ("collections.namedtuple('P', 'x y')(1, 2)", ""),
    ("datetime.timedelta(1)", ""), ("datetime.timezone.utc", ""), ("statistics.NormalDist(0, 1)", ""),
    ("string.Template('$a')", ""), ("textwrap", ""), ("heapq", ""), ("bisect", ""), ("re", ""),
    ("range(3)", ""), ("property(len)", ""), ("classmethod(len)", ""), ("list[int]", ""),
    ("int | None", ""), ("{}.keys()", ""), ("iter([1])", ""), ("@catch@(lambda: data.nope)", CATCH),
    ("@catch@(lambda: next(iter([])))", CATCH), ("@catch@(lambda: pmap(len, [1], fail_fast=True))", CATCH),
]
_RAW_BUILTINS = frozenset(
    getattr(builtins, name)
    for name in ("open", "eval", "exec", "compile", "globals", "locals", "vars", "dir", "input",
                 "breakpoint", "__import__", "__build_class__", "getattr", "setattr", "delattr",
                 "print", "exit", "help")
    if hasattr(builtins, name)
)


def dangerous(value: object) -> str | None:
    """Why value must never reach a program, or None."""
    if isinstance(value, (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType,
                          types.CellType)) or type(value).__name__ == "PyCapsule":
        return f"a {type(value).__name__} object"
    if isinstance(value, type) and issubclass(value, (type, string.Formatter)):
        return f"the class {value!r}"
    if isinstance(value, string.Formatter):
        return "a string.Formatter"
    if isinstance(value, types.BuiltinFunctionType) and value in _RAW_BUILTINS:
        return f"the raw builtin {value!r}"
    if isinstance(value, (dict, types.MappingProxyType)) and ("__builtins__" in value or "__module__" in value):
        return "a namespace dict"
    return None


def nameable(value: object) -> bool:
    """Whether value is what type() may give: a stand-in, or a class the program can name."""
    if isinstance(value, (TypeOf, ContainerType, ClassOf)):
        return True
    return isinstance(value, type) and (
        value in _class_of._OFFERED or is_program_class(value) or issubclass(value, enum.Enum)
    )


def _public_names(value: object) -> list[str]:
    if isinstance(value, ModuleProxy):
        names = list(value._members)
    elif isinstance(value, ContainerType):
        names = dir(value._type)
    else:
        names = dir(value)
    return sorted(n for n in names if not n.startswith("_"))


def _readable_private(value: object, name: str) -> bool:
    """The documented rule for a name starting with '_': only on what the program made."""
    if not name.startswith("_"):
        return False
    if name == "__class__":  # of anything: what type() gives, checked by the walk
        return True
    owner = value if isinstance(value, type) else type(value)
    if not is_program_class(owner):
        return False
    if name == "__dict__":
        return not isinstance(value, type)  # and only of plain lineages, not walked here
    return name in SPECIAL_METHODS or not name.startswith("__")


def _plain(program: str) -> str:
    """The program with each @token@ written as the plain name token."""
    return re.sub(r"@(\w+)@", r"\1", program)


@settings(max_examples=BULK_EXAMPLES // 2, deadline=None)
@given(data=st.data())
def test_random_attribute_walks_reach_nothing_hidden(data: st.DataObject) -> None:
    kept: list[object] = []
    namespace = host_session(keep=kept.append)
    root, prelude = data.draw(st.sampled_from(WALK_ROOTS), label="root")
    outcome = run_in_process(_plain(f"{PRELUDE}{prelude}v0 = {root}\nkeep(v0)"), namespace)
    assert outcome.status == "ok", outcome
    for step in range(data.draw(st.integers(1, 5), label="steps")):
        value = kept[-1]
        moves = ["attribute", "attribute", "private"] + ["call"] * callable(value) + ["next"]
        move = data.draw(st.sampled_from(moves), label="move")
        name = ""
        if move == "attribute" and _public_names(value):
            name = data.draw(st.sampled_from(_public_names(value)), label="attribute")
        elif move == "private" or move == "attribute":
            name = data.draw(st.sampled_from(PRIVATE_NAMES), label="private attribute")
        if name:
            how = data.draw(st.sampled_from([f"v{step}.{name}", f"getattr(v{step}, {data.draw(spelled(name))})"]))
        else:
            how = f"v{step}()" if move == "call" else f"next(iter(v{step}))"
        program = f"v{step + 1} = {how}\nkeep(v{step + 1})"
        outcome = run_in_process(program, namespace)
        assert not revealed(outcome.message + outcome.output), f"{program}\n{outcome}"
        readable = _readable_private(value, name)
        if outcome.status != "ok":
            if (name.startswith("_") and not readable) or name in HIDDEN_ATTRIBUTES:
                assert outcome.status == "rejected" or f"{name!r} is not allowed" in outcome.message
            break
        assert readable or not name.startswith("_"), f"{program} was allowed"
        assert name not in HIDDEN_ATTRIBUTES, f"{program} was allowed"
        reason = dangerous(kept[-1])
        assert reason is None, f"{program} handed out {reason}"
        if name == "__class__":
            assert nameable(kept[-1]), f"{program} handed out the class {kept[-1]!r}"
        # (type's and ClassOf's reprs are the real class's, as print(type(x)) shows it)
        if not isinstance(kept[-1], (TypeOf, ClassOf)):
            assert not revealed(repr(kept[-1])), f"{program} handed out {kept[-1]!r}"
    assert_host_intact(namespace)


# -- a sample through the real child, every OS layer on -------------------------------------------

CHUNKS = list(DATA)


def echo(x: str) -> str:
    return x


class ChildSandbox:
    """One strict sandbox child, served by a trio loop on its own thread.

    Hypothesis calls the test once per example; keeping the child in one loop across examples
    saves a child start (a fifth of a second) per example.
    """

    def __init__(self) -> None:
        self.chunks = list(CHUNKS)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._serve,), daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    async def _serve(self) -> None:
        try:
            budget = {"tokens": 1000, "turns": 3, "seconds": 60.0, "cost": 0.0}
            async with Sandbox(data=self.chunks, tools=[echo], limits=limits(), budget=lambda: budget,
                               strict=True) as sandbox:
                self._sandbox = sandbox
                self._token = trio.lowlevel.current_trio_token()
                self._stop = trio.Event()
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # raised again by __init__ on the test's thread
            self._failure = exc
        finally:
            self._ready.set()

    def execute(self, source: str) -> ExecResult:
        return trio.from_thread.run(self._sandbox.execute, source, trio_token=self._token)

    def close(self) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()


@pytest.fixture(scope="module")
def child() -> Iterator[ChildSandbox]:
    sandbox = ChildSandbox()
    yield sandbox
    sandbox.close()


CHILD_HOST_CHECK = HOST_CHECK.replace("print(", "done([").removesuffix(")") + "])"
CHILD_HOST_ANSWER = [[1], "[2]", math.pi, "x", CHUNKS, "<tools: echo>", 1000]


@pytest.mark.skipif(sys.platform != "linux", reason="the OS layers are Linux's")
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_attack_variants_are_refused_in_the_real_child(child: ChildSandbox, data: st.DataObject) -> None:
    attack = data.draw(ATTACKS, label="attack")
    _context, program = data.draw(wrapped(attack), label="context and program")
    assert_refused(attack, program, from_child(child.execute(program)))
    after = child.execute(CHILD_HOST_CHECK)
    assert (after.status, after.answer) == ("done", CHILD_HOST_ANSWER), after
    assert child.chunks == CHUNKS
