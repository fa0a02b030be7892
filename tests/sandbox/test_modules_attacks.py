"""Attacks through the modules of the second wave, one row each, against the language layer.

Each module is a new surface: for each, what it could reach (a dunder, a frame, a real module, a
metaclass, the host's objects, a file) and what it could change (``data``, shared module state,
other classes), tried, with the refusal it must meet. The rules of docs/security.md ("Rules for
widening the language") for copy, operator and typing are tested here by name.
"""

from __future__ import annotations

import collections.abc
import decimal
import enum
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptcrun.sandbox import Sandbox
from ptcrun.sandbox.child import _attributes, _mod_copy
from ptcrun.sandbox.child._attributes import guarded_getattr
from ptcrun.sandbox.child._mod_classes import record_program_class
from ptcrun.sandbox.child._modules import _PROXIES
from tests.sandbox.inproc import DATA, Session

from .conftest import limits

PRIVATE = "names starting with '_' are private in the sandbox"
CANNOT_IMPORT = "cannot import name"
NOT_CHANGEABLE = "can be changed in the sandbox"

RECORD = "import dataclasses\n@dataclasses.dataclass\nclass P:\n    x: object\n"

ATTACKS: dict[str, tuple[str, type[BaseException] | None, str]] = {
    # --- random: a generator of the program's own, never a way into data
    "random_shuffle_data": ("import random\nrandom.shuffle(data)", TypeError, "random.shuffle() takes a list"),
    "random_instance_shuffle_data": ("import random\nrandom.Random(1).shuffle(data)", TypeError, "takes a list"),
    "random_unbound_shuffle_data": ("import random\nrandom.Random.shuffle(random.Random(), data)", TypeError, "takes a list"),
    "random_generator_behind_a_function": ("import random\nrandom.seed.__self__", Exception, "__self__"),
    "random_setstate_on_a_host_object": ("import random\nrandom.Random.setstate(tool, (3, tuple(range(625)), None))", TypeError, "Random.setstate() needs a 'Random' object"),
    "random_real_module": ("from random import SystemRandom", ImportError, CANNOT_IMPORT),
    "random_module_of_the_class": ("import random\nrandom.Random.__module__", Exception, "__module__"),
    "random_os_entropy": ("from random import _urandom", Exception, "'_urandom'"),
    # --- typing: annotations, never evaluation, never a metaclass
    "typing_get_type_hints": ("from typing import get_type_hints", ImportError, CANNOT_IMPORT),
    "typing_get_origin": ("from typing import get_origin", ImportError, CANNOT_IMPORT),
    "typing_forward_ref": ("from typing import ForwardRef", ImportError, CANNOT_IMPORT),
    "typing_sys": ("import typing\ntyping.sys", AttributeError, "has no attribute 'sys'"),
    "typing_origin_attribute": ("import typing\ngetattr(typing.List[int], '__origin__')", AttributeError, PRIVATE),
    "typing_type_builds_no_class": ("import typing\ntyping.Type[int]('K', (), {})", TypeError, "cannot be instantiated"),
    "typing_type_alias_mro": ("import typing\ntyping.Type.mro()", AttributeError, "'mro' is not allowed"),
    "typing_register_with_a_shared_abc": ("import typing\ntyping.Mapping.register(str)", AttributeError, "'register' is not allowed"),
    "typing_register_with_a_protocol": ("import typing\ntyping.SupportsInt.register(str)", AttributeError, "'register' is not allowed"),
    "typing_named_tuple_with_another_base": ("from typing import NamedTuple\nclass P(NamedTuple, dict):\n    x: int", TypeError, "can only inherit from a NamedTuple type"),
    "typing_named_tuple_over_its_machinery": ("from typing import NamedTuple\nclass P(NamedTuple):\n    x: int\n    def __getnewargs__(self):\n        return ()", Exception, "__getnewargs__"),
    "typing_named_tuple_generated_code": ("from typing import NamedTuple\nclass P(NamedTuple):\n    x: int\ngetattr(P.__new__, '__globals__')", Exception, "'__new__' is not allowed"),
    "typing_named_tuple_machinery_replaced": ("from typing import NamedTuple\nclass P(NamedTuple):\n    x: int\n    _make = 1", AttributeError, "Cannot overwrite NamedTuple attribute _make"),
    "typing_forward_ref_code": ("import typing\nx = typing.Optional['Node']\ngetattr(x, '__args__')", AttributeError, PRIVATE),
    "typing_metaclass_of_a_protocol": ("import typing\nclass P(typing.Protocol):\n    pass\ntype(P)", TypeError, "metaclass"),
    "typing_metaclass_of_a_typed_dict": ("import typing\nclass M(typing.TypedDict):\n    a: int\ntype(M)", TypeError, "metaclass"),
    # --- copy: containers and the program's own objects only
    "copy_tool": ("import copy\ncopy.copy(tool)", TypeError, "copy.copy() copies numbers, text, containers"),
    "copy_budget": ("import copy\ncopy.deepcopy(budget)", TypeError, "not 'FakeBudget' objects"),
    "copy_module_proxy": ("import copy, json\ncopy.deepcopy(json)", TypeError, "not 'ModuleProxy' objects"),
    "copy_program_object_holding_a_host_object": ("import copy\nclass A:\n    pass\na = A()\na.b = budget\ncopy.deepcopy(a)", TypeError, "not 'FakeBudget' objects"),
    "copy_subclass_of_a_host_class": ("import copy, io\nclass S(io.StringIO):\n    pass\ncopy.copy(S())", TypeError, "it extends 'StringIO'"),
    "copy_generator": ("import copy\ncopy.deepcopy(x for x in [1])", TypeError, "not 'generator' objects"),
    "copy_machinery": ("from copy import _deepcopy_dispatch", Exception, "'_deepcopy_dispatch'"),
    "copy_reduction": ("from copy import _reconstruct", Exception, "'_reconstruct'"),
    "copy_reduction_tables": ("import copyreg", ImportError, "import of 'copyreg' is not allowed"),
    "copy_memo_of_another_kind": ("import copy\nclass M(dict):\n    pass\ncopy.deepcopy([1], M())", TypeError, "memo must be a dict"),
    # --- operator: getters that obey the attribute guard
    "attrgetter_dunder": ("import operator\noperator.attrgetter('__class__')", AttributeError, PRIVATE),
    "attrgetter_dotted_dunder": ("import operator\noperator.attrgetter('real.__class__')", AttributeError, PRIVATE),
    "attrgetter_frame": ("import operator\noperator.attrgetter('gi_frame')", AttributeError, "'gi_frame' is not allowed"),
    "attrgetter_str_subclass": ("import operator\nclass N(str):\n    def split(self, sep):\n        return ['x']\noperator.attrgetter(N('__globals__'))", TypeError, "attribute name must be a string"),
    "attrgetter_rebuilt_from_its_class": ("import operator\nG = type(operator.attrgetter('x'))\nG(('__globals__',))(lambda: 0)", TypeError, "objects of class '_AttrGetter' cannot be made"),
    "methodcaller_dunder": ("import operator\noperator.methodcaller('__reduce_ex__', 2)", AttributeError, PRIVATE),
    "methodcaller_format_lookup": ("import operator\noperator.methodcaller('format', 1)('{0.__class__}')", ValueError, "format field {0.__class__} is not allowed"),
    "methodcaller_rebuilt_from_its_class": ("import operator\nM = type(operator.methodcaller('x'))\nM('__dict__', (), {})(1)", TypeError, "objects of class '_MethodCaller' cannot be made"),
    "operator_setitem": ("from operator import setitem", ImportError, CANNOT_IMPORT),
    "operator_delitem": ("import operator\noperator.delitem", AttributeError, "has no attribute 'delitem'"),
    "operator_in_place": ("from operator import iadd", ImportError, CANNOT_IMPORT),
    # --- csv and io: text in memory, no file, no shared state
    "io_open": ("from io import open", ImportError, CANNOT_IMPORT),
    "io_file": ("import io\nio.FileIO", AttributeError, "has no attribute 'FileIO'"),
    "string_io_descriptor": ("import io\nio.StringIO().fileno()", Exception, "fileno"),
    "string_io_buffer": ("import io\nio.StringIO().buffer", AttributeError, "buffer"),
    "csv_shared_dialect": ("import csv\ncsv.excel.delimiter = ';'", TypeError, NOT_CHANGEABLE),
    "csv_register_dialect": ("from csv import register_dialect", ImportError, CANNOT_IMPORT),
    "csv_field_size_limit": ("from csv import field_size_limit", ImportError, CANNOT_IMPORT),
    "csv_fieldnames_setter_on_a_host_object": ("import csv\ncsv.DictReader.fieldnames.fset(tool, ['x'])", TypeError, "'NoneType' object is not callable"),
    "csv_reader_state": ("import csv\nr = csv.DictReader(['a'])\nr.reader = None", TypeError, NOT_CHANGEABLE),
    # --- hashlib, base64, unicodedata: bytes and text in, no file, no capsule
    "hashlib_file_digest": ("from hashlib import file_digest", ImportError, CANNOT_IMPORT),
    "hashlib_unknown_algorithm": ("import hashlib\nhashlib.new('md4')", ValueError, "takes one of"),
    "hashlib_str_subclass_name": ("import hashlib\nclass N(str):\n    def lower(self):\n        return 'sha256'\nhashlib.new(N('whirlpool'))", ValueError, "takes one of"),
    "hashlib_key_derivation": ("from hashlib import scrypt", ImportError, CANNOT_IMPORT),
    "base64_file_functions": ("from base64 import encode", ImportError, CANNOT_IMPORT),
    "base64_binascii_module": ("import base64\nbase64.binascii", AttributeError, "has no attribute 'binascii'"),
    "unicodedata_capsule": ("from unicodedata import ucnhash_CAPI", ImportError, CANNOT_IMPORT),
    # --- decimal, fractions, difflib, enum
    "decimal_default_context": ("from decimal import DefaultContext", ImportError, CANNOT_IMPORT),
    "decimal_module_of_a_context": ("import decimal\ngetattr(decimal.getcontext().__class__, '__module__')", AttributeError, PRIVATE),
    "fraction_class_state": ("from fractions import Fraction\nFraction.numerator = 1", TypeError, NOT_CHANGEABLE),
    "difflib_html": ("from difflib import HtmlDiff", ImportError, CANNOT_IMPORT),
    "difflib_matcher_state": ("import difflib\nm = difflib.SequenceMatcher(None, 'a', 'b')\nm.a = 'c'", TypeError, NOT_CHANGEABLE),
    "enum_metaclass": ("from enum import EnumMeta", ImportError, CANNOT_IMPORT),
    "enum_metaclass_new_name": ("from enum import EnumType", ImportError, CANNOT_IMPORT),
    "enum_metaclass_of_a_class": ("import enum\nclass C(enum.Enum):\n    A = 1\ntype(C)", TypeError, "metaclass"),
    "enum_members_table": ("import enum\nclass C(enum.Enum):\n    A = 1\nC.__members__['B'] = C.A", TypeError, "cannot assign to an item of a 'mappingproxy' object"),
    "enum_private_table": ("import enum\nclass C(enum.Enum):\n    A = 1\ngetattr(C, '_member_map_')", AttributeError, PRIVATE),
    "enum_reassign_member": ("import enum\nclass C(enum.Enum):\n    A = 1\nC.A = 2", AttributeError, "reassign"),
    "enum_shared_base": ("import enum\nenum.Enum.describe = 1", TypeError, NOT_CHANGEABLE),
    # --- dataclasses: the program's own classes, methods that are closures and hand out nothing
    "dataclass_host_class": ("import dataclasses, json\ndataclasses.dataclass(json.JSONDecoder)", TypeError, "decorates the program's own classes"),
    "dataclass_builtin_class": ("import dataclasses\ndataclasses.dataclass(int)", TypeError, "decorates the program's own classes"),
    "dataclass_host_object": ("import dataclasses\ndataclasses.dataclass(budget)", TypeError, "not 'FakeBudget'"),
    "dataclass_generated_globals": (f"{RECORD}P.__init__.__globals__", Exception, "__globals__"),
    "dataclass_generated_globals_getattr": (f"{RECORD}getattr(P.__eq__, '__globals__')", AttributeError, PRIVATE),
    "dataclass_generated_closure": (f"{RECORD}getattr(P.__repr__, '__closure__')", AttributeError, PRIVATE),
    "dataclass_field_state": ("import dataclasses\nf = dataclasses.field()\nf.name = 'x'", TypeError, NOT_CHANGEABLE),
    "dataclass_fields_state": (f"{RECORD}dataclasses.fields(P)[0].default = 1", TypeError, NOT_CHANGEABLE),
    "dataclass_fields_of_a_host_object": ("import dataclasses\ndataclasses.fields(budget)", TypeError, "must be called with a dataclass"),
    "dataclass_asdict_copies_no_host_object": (f"{RECORD}dataclasses.asdict(P(budget))", TypeError, "not 'FakeBudget' objects"),
    "dataclass_frozen_bypass": ("import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass F:\n    x: int\nobject.__setattr__(F(1), 'x', 2)", Exception, "__setattr__"),
    "dataclass_frozen_init_writes_no_host_object": ("import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass F:\n    name: str\nF.__init__(tool, 'changed')", TypeError, "F.__init__() needs a 'F' object, not 'SimpleNamespace'"),
    "dataclass_init_writes_no_host_object": (f"{RECORD}P.__init__(tool, 'changed')", TypeError, "P.__init__() needs a 'P' object"),
    "dataclass_repr_reads_no_host_object": (f"{RECORD}P.__repr__(tool)", TypeError, "P.__repr__() needs a 'P' object"),
    "dataclass_order_reads_no_host_object": ("import dataclasses\n@dataclasses.dataclass(order=True)\nclass O:\n    name: str\nO.__lt__(tool, tool)", TypeError, "O.__lt__() needs a 'O' object"),
    "dataclass_slots": ("import dataclasses\n@dataclasses.dataclass(slots=True)\nclass S:\n    x: int", TypeError, "dataclass(slots=True) is not available"),
    "dataclass_make": ("from dataclasses import make_dataclass", ImportError, CANNOT_IMPORT),
    "dataclass_module_sys": ("import dataclasses\ndataclasses.sys", AttributeError, "has no attribute 'sys'"),
    "dataclass_field_subclass_as_default": ("import dataclasses\nF = type(dataclasses.field())\nclass G(F):\n    pass", TypeError, "a class cannot derive from 'Field' in the sandbox"),
}


@pytest.mark.parametrize(("source", "error", "message"), ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused(source: str, error: type[BaseException] | None, message: str) -> None:
    session = Session(tool=types.SimpleNamespace(name="tool"))
    if error is None:  # harmless by design: it runs, and reaches nothing
        assert session.run(source) == "True\n"
        return
    with pytest.raises(error) as info:
        session.run(source)
    text = getattr(info.value, "message", None) or str(info.value)
    assert message in text
    assert session["data"] == DATA
    assert vars(session["tool"]) == {"name": "tool"}


def test_data_comes_out_of_every_module_unchanged():
    session = Session()
    session.run("""
        import random, copy, operator, csv, io, difflib
        random.sample(data, 2)
        random.choice(data)
        twin = copy.deepcopy(data)
        first = operator.itemgetter(0)(data)
        rows = list(csv.reader(data))
        diff = list(difflib.ndiff(data, data[::-1]))
    """)
    assert session["data"] == DATA
    assert session["twin"] is session["data"]  # a tuple of text needs no copy, as in CPython


def test_copy_of_named_datasets_says_to_copy_the_items():
    session = Session(data=types.MappingProxyType({"logs": ("a",)}))
    for call in ("copy.deepcopy(data)", "copy.copy(data)"):
        with pytest.raises(TypeError, match=r"not 'mappingproxy' objects. Copy its items instead, e.g. dict\(x\)"):
            session.run(f"import copy\n{call}")
    assert session.run("import copy\nprint(copy.deepcopy(dict(data)))") == "{'logs': ('a',)}\n"


def test_no_served_member_is_a_module_or_a_metaclass_or_a_frame():
    # The proxies are built from hand-written lists; a wrong entry must not slip in.
    for module, proxy in _PROXIES.items():
        for name, value in proxy._members.items():
            assert not isinstance(value, types.ModuleType), f"{module}.{name}"
            assert not (isinstance(value, type) and issubclass(value, type)), f"{module}.{name}"
            assert not isinstance(value, (types.FrameType, types.CodeType)), f"{module}.{name}"


def test_a_registered_abc_would_change_isinstance_for_the_child_itself():
    # Why typing's aliases may not hand out ABCMeta.register: the registration is process-wide.
    class Mine:
        pass

    collections.abc.Sized.register(Mine)
    assert isinstance(Mine(), collections.abc.Sized)
    out = Session().run("import typing\nclass P(typing.Sized):\n    pass\nclass Q:\n    pass\nP.register(Q)\nprint(isinstance(Q(), P))")
    assert out == "True\n"  # the program's own abstract class is its own business


def test_copy_refuses_a_programs_class_with_a_reduction_hook():
    # A program cannot define __reduce__ (the compile policy refuses the name); were it ever
    # able to, copy must not call it.
    class Hooked:
        def __reduce__(self) -> tuple[object, ...]:
            raise AssertionError("copy called the program's reduction")

    record_program_class(Hooked)
    with pytest.raises(TypeError, match="defines __reduce__, which the sandbox does not call"):
        _mod_copy.deepcopy(Hooked())
    with pytest.raises(TypeError, match="defines __reduce__"):
        _mod_copy.copy(Hooked())


def test_careless_copy_would_rebuild_a_host_object():
    # What the wrappers stand in for: the real module rebuilds anything through its reduction.
    import copy

    class HostObject:
        def __init__(self) -> None:
            self.secret = "host"

    assert copy.copy(HostObject()).secret == "host"
    with pytest.raises(TypeError, match="not 'HostObject' objects"):
        _mod_copy.copy(HostObject())


def test_decimal_context_writes_stay_in_the_programs_thread():
    session = Session()
    session.run("import decimal\ndecimal.getcontext().prec = 5")
    assert decimal.getcontext().prec == 5  # the program ran on this thread: its own settings
    decimal.getcontext().prec = 28
    with pytest.raises(TypeError, match=NOT_CHANGEABLE):
        session.run("import decimal\ndecimal.Decimal.real = 1")


ALLOCATIONS = {
    "decimal_precision": "import decimal\ndecimal.getcontext().prec = decimal.MAX_PREC\nprint(decimal.Decimal(1) / 3)",
    # random's sizes are C ints: getrandbits and randbytes stop at 256 MiB, within the limit.
    "shake_digest": "import hashlib\nhashlib.shake_128(b'x').digest(2**34)",
    "string_io": "import io\nbuffer = io.StringIO()\nbuffer.seek(2**34)\nbuffer.write('x')",
}


@pytest.mark.parametrize("source", ALLOCATIONS.values(), ids=ALLOCATIONS.keys())
async def test_an_allocation_too_large_through_a_module_meets_the_memory_limit(source: str) -> None:
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(source)
        after = await sandbox.execute("print('next')")
    assert result.status == "error"
    assert result.limit is not None and result.limit.setting == "Limits.sandbox_memory_bytes"
    assert after.output == "next\n"


# --- fuzzing: attribute walks from everything the new modules serve ---------------------------

NEW_MODULES = (
    "base64", "copy", "csv", "dataclasses", "decimal", "difflib", "enum", "fractions", "hashlib",
    "io", "operator", "random", "typing", "unicodedata",
)
STARTS = sorted((f"{m}.{n}", v) for m in NEW_MODULES for n, v in _PROXIES[m]._members.items())
# Names that lead somewhere in CPython: to globals, the class tree, the wrapped real object.
DUNDERS = (
    "__class__", "__globals__", "__dict__", "__self__", "__func__", "__origin__", "__module__",
    "__code__", "__closure__", "__wrapped__", "__init__", "__subclasses__", "__bases__",
    "__mro__", "__reduce_ex__", "__builtins__", "__getattribute__", "__call__", "__args__",
    "__objclass__", "__spec__", "__loader__", "__name__", "__qualname__", "__members__",
)
HIDDEN = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(STARTS), picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
def test_attribute_walks_from_served_members_reach_nothing_hidden(start, picks):
    where, obj = start
    for pick in picks:
        names = sorted(n for n in dir(obj) if not n.startswith("_")) + list(DUNDERS)
        name = names[pick % len(names)]
        # An enum class's members, read-only, are served on purpose (docs/security.md).
        readable = ("__name__", "__qualname__", "__class__") + (
            ("__members__",) if isinstance(obj, type) and issubclass(obj, enum.Enum) else ()
        )
        try:
            obj = guarded_getattr(obj, name)
        except (AttributeError, TypeError):
            return
        where += f".{name}"
        # A served object is nobody's program object: of its dunders only a name may be read.
        assert not name.startswith("_") or name in readable, where
        assert not isinstance(obj, HIDDEN), where
        assert not (isinstance(obj, type) and issubclass(obj, type)), where


def test_the_walks_find_a_careless_private_name_check(monkeypatch):
    monkeypatch.setattr(_attributes, "check_private", lambda obj, name: None)
    with pytest.raises(AssertionError, match=r"\.__"):
        test_attribute_walks_from_served_members_reach_nothing_hidden()


def test_deepcopy_leaves_the_memo_it_is_given_without_addresses():
    out = Session().run("import copy\nmemo = {}\ncopy.deepcopy([[1], {'a': [2]}], memo)\nprint(memo)")
    assert out == "{}\n"  # copy's own memo holds id() of every object copied


# --- the rule for typing and dataclasses, where the tripwire is armed --------------------------

TRIPWIRE_PROGRAMS = {
    # An exact str is compiled in typing's trusted section; anything else stays untrusted.
    "forward_reference": ("import typing\nprint(typing.Optional['Node'])", "typing.Optional[ForwardRef('Node')]\n", None),
    "forward_reference_of_a_str_subclass": (
        "import typing\nclass S(str):\n    pass\ntyping.Optional[S('Node')]", None, "blocked by the sandbox: compile"),
    # Methods that are closures: a dataclass works where exec and compile are refused.
    "dataclass": ("import dataclasses\n@dataclasses.dataclass(order=True)\nclass P:\n    x: int\n    y: int = 0\nprint(P(1) < P(2), P(3))", "True P(x=3, y=0)\n", None),
    "type_var_and_enum_call": ("import typing, enum\nT = typing.TypeVar('T')\nC = enum.Enum('C', 'A B')\nprint(T, C.B.value)", "~T 2\n", None),
    "named_tuple_class": ("from typing import NamedTuple\nclass P(NamedTuple):\n    'A point.'\n    x: int\n    y: int = 2\n    def total(self):\n        return self.x + self.y\nprint(P(1), P(1).total())", "P(x=1, y=2) 3\n", None),
    "no_evaluation": ("from typing import get_type_hints", None, "cannot import name 'get_type_hints'"),
}


@pytest.mark.parametrize(("source", "output", "error"), TRIPWIRE_PROGRAMS.values(), ids=TRIPWIRE_PROGRAMS.keys())
async def test_typing_and_dataclasses_under_the_tripwire(source: str, output: str | None, error: str | None) -> None:
    async with Sandbox(limits=limits()) as sandbox:
        result = await sandbox.execute(source)
    if error is None:
        assert (result.status, result.output) == ("ok", output), result.error
    else:
        assert result.error is not None and error in result.error.message


def test_the_real_attrgetter_would_read_what_the_guard_refuses():
    # What the wrapper stands in for: operator's own getter looks names up in C.
    import operator

    def f() -> None:
        pass

    assert operator.attrgetter("__globals__")(f) is globals()
    with pytest.raises(AttributeError, match=PRIVATE):
        Session().run("import operator\nf = lambda: 0\noperator.attrgetter('__globals__')(f)")


# --- methods read off a class the program did not make take only that class's objects ---------

JSON_SUBCLASS = "import json\nclass E(json.JSONEncoder):\n    pass\n"
UNBOUND = {
    # The class itself as self: its __init__ wrote the separators and default of every encoder.
    "inherited_init_on_the_host_class": (JSON_SUBCLASS + "E.__init__(json.JSONEncoder, separators=(';', '='), default=print)", "JSONEncoder.__init__() needs a 'JSONEncoder' object"),
    "init_through_a_super_of_the_class": (JSON_SUBCLASS + "super(E, E).__init__(json.JSONEncoder, separators=(';', '='))", "JSONEncoder.__init__() needs a 'JSONEncoder' object"),
    "public_method_on_another_class": ("import difflib, csv\ndifflib.SequenceMatcher.set_seq1(csv.excel, 'abc')", "SequenceMatcher.set_seq1() needs a 'SequenceMatcher' object"),
    "public_method_on_a_typing_alias": ("import difflib, typing\ndifflib.SequenceMatcher.set_seqs(typing.Mapping, 'a', 'b')", "needs a 'SequenceMatcher' object"),
    "public_method_on_a_host_object": ("import difflib\ndifflib.SequenceMatcher.set_seq2(tool, 'abc')", "not a 'SimpleNamespace' object"),
    "inherited_init_on_a_host_object": ("import csv\nclass W(csv.DictWriter):\n    pass\nW.__init__(tool, None, ['a'])", "DictWriter.__init__() needs a 'DictWriter' object"),
    "method_through_getattr": ("import json\ngetattr(json.JSONEncoder, 'encode')(json.JSONDecoder, 1)", "JSONEncoder.encode() needs a 'JSONEncoder' object"),
    "method_through_attrgetter": ("import json, operator\noperator.attrgetter('encode')(json.JSONEncoder)(tool, 1)", "needs a 'JSONEncoder' object"),
    "method_with_no_argument": ("import json\njson.JSONEncoder.encode()", "not nothing"),
    "method_stored_on_own_class": ("import json\nclass Mine:\n    encode = json.JSONEncoder.encode\nMine().encode(1)", "not a 'Mine' object"),
    "setter_of_a_host_property": ("import csv\ncsv.DictReader.fieldnames.fget", "'fget' of a property the program did not make is not available"),
    "getter_of_a_host_property_by_getattr": ("import csv\ngetattr(csv.DictReader.fieldnames, 'fg' + 'et')", "'fget' of a property"),
}


@pytest.mark.parametrize(("source", "message"), UNBOUND.values(), ids=UNBOUND.keys())
def test_a_method_of_a_class_the_program_did_not_make_takes_only_its_objects(
    source: str, message: str
) -> None:
    import csv
    import json

    separators = (json.JSONEncoder.item_separator, json.JSONEncoder.key_separator)
    session = Session(tool=types.SimpleNamespace(name="tool"))
    with pytest.raises((TypeError, AttributeError)) as info:
        session.run(source)
    assert message in str(info.value)
    assert (json.JSONEncoder.item_separator, json.JSONEncoder.key_separator) == separators
    assert "default" not in vars(json.JSONEncoder) or vars(json.JSONEncoder)["default"].__module__ == "json.encoder"
    assert not hasattr(csv.excel, "a") and vars(session["tool"]) == {"name": "tool"}
    assert session.run("import json\nprint(json.dumps({'a': [1, 2]}))") == '{"a": [1, 2]}\n'


def test_methods_read_off_classes_still_work_on_their_own_objects():
    out = Session().run("""
        import json, collections, difflib, fractions
        class E(json.JSONEncoder):
            def __init__(self):
                super().__init__(separators=(",", ":"))
            def default(self, o):
                if isinstance(o, set):
                    return sorted(o)
                return json.JSONEncoder.default(self, o)
        class Sized:
            @property
            def size(self):
                return 3
        c = collections.Counter("aab")
        m = difflib.SequenceMatcher()
        difflib.SequenceMatcher.set_seqs(m, "abc", "abd")
        print(E().encode({"s": {2, 1}}), collections.Counter.most_common(c, 1),
              fractions.Fraction.limit_denominator(fractions.Fraction(1, 3), 2),
              round(m.ratio(), 2), Sized.size.fget(Sized()), json.JSONEncoder.encode(json.JSONEncoder(), [1]))
    """)
    assert out == '{"s":[1,2]} [(\'a\', 2)] 1/2 0.67 3 [1]\n'


def _python_methods() -> list[tuple[str, str, str]]:
    """(module, class, method) for every Python function a served class has, in its MRO."""
    found = []
    for module, proxy in sorted(_PROXIES.items()):
        for member, value in sorted(proxy._members.items()):
            if not isinstance(value, type):
                continue
            for klass in value.__mro__:
                for name, raw in vars(klass).items():
                    if type(raw) is types.FunctionType and not name.startswith("_"):
                        found.append((module, member, name))
    return sorted(set(found))


def test_every_python_method_of_every_served_class_refuses_a_foreign_self():
    methods = _python_methods()
    assert len(methods) > 50  # difflib, csv, json, statistics, string, fractions, enum, typing...
    session = Session(tool=types.SimpleNamespace(name="tool"))
    session.run("import " + ", ".join(sorted({module for module, _, _ in methods})))
    for module, member, name in methods:
        for foreign in ("tool", "json.JSONEncoder", "csv.excel", "[]"):
            with pytest.raises(TypeError, match=r"needs a .* object as its first argument"):
                session.run(f"{module}.{member}.{name}({foreign}, 1, 2)")
    assert vars(session["tool"]) == {"name": "tool"}


def test_modules_serve_copies_of_their_changeable_tables():
    session = Session()
    with pytest.raises(AttributeError, match="'frozenset' object has no attribute 'add'"):
        session.run("import hashlib\nhashlib.algorithms_guaranteed.add('evil')")
    session.run("import decimal\ndecimal.BasicContext.prec = 3\ndecimal.ExtendedContext.prec = 4")
    assert (decimal.BasicContext.prec, decimal.ExtendedContext.prec) == (9, 9)
    assert session.run("print(decimal.BasicContext.prec)") == "3\n"  # the session's own copy


# --- module state a program changes stays with the program's own code --------------------------

CHANGE_MODULE_STATE = """
import decimal, random, csv, json, enum, typing
ctx = decimal.getcontext()
ctx.prec, ctx.capitals, ctx.rounding = 3, 0, decimal.ROUND_DOWN
ctx.traps[decimal.Inexact] = True
decimal.BasicContext.prec = 2
random.seed(99)
class Semi(csv.excel):
    delimiter = ";"
class Color(enum.Enum):
    RED = 1
Box = typing.List[Semi]
try:
    class E(json.JSONEncoder):
        pass
    E.__init__(json.JSONEncoder, separators=(";", "="))
except TypeError:
    pass
print(decimal.Decimal("1E+5") + 0, list(csv.reader(["a;b"], Semi)))
"""
LATER_PROGRAM = """
import decimal, csv, json
print(decimal.getcontext().prec, list(csv.reader(["a;b,c"])), json.dumps({"k": [1, 2]}))
print(pmap(lambda x: str(decimal.Decimal(1) / 3)[:6], [1]))
done({"ratio": 2 / 3, "big": 10 ** 20, "text": "é"})
"""


async def test_module_state_a_program_changes_never_reaches_the_childs_own_code() -> None:
    def echo(value: object) -> object:
        return value

    async with Sandbox(tools=[echo], limits=limits()) as sandbox:
        first = await sandbox.execute(CHANGE_MODULE_STATE + "print(tool.echo([0.1, 'x']))")
        later = await sandbox.execute(LATER_PROGRAM)
    assert first.error is None, first.error
    assert first.output == "1.00e+5 [['a', 'b']]\n[0.1, 'x']\n"
    # The session keeps its own arithmetic settings (as a REPL would); csv's default dialect,
    # json's encoder, a pmap thread's decimal context and what crosses the boundary do not move.
    assert later.output == "3 [['a;b', 'c']] {\"k\": [1, 2]}\n['0.3333']\n"
    assert (later.status, later.answer) == ("done", {"ratio": 2 / 3, "big": 10**20, "text": "é"})


def test_copy_of_a_class_is_the_class_itself_stand_ins_too() -> None:
    # copy.copy(int) is int in Python; what a program has for list, type and type(tool) is no
    # class, and copying it must still hand back the same object, not raise naming the stand-in.
    session = Session(tool=types.SimpleNamespace(name="tool"))
    out = session.run("""
import copy
for cls in (int, list, dict, type, type(tool), type(None), type(len)):
    print(copy.copy(cls) is cls, copy.deepcopy(cls) is cls, end=" ")
holder = copy.deepcopy({"kind": type(tool), "kinds": [list, type]})
print(holder["kind"] is type(tool), holder["kinds"][0] is list, holder["kinds"][1] is type)
""")
    assert out == "True True " * 7 + "True True True\n"
    # The stand-in is handed back, never the class behind it.
    assert session["holder"]["kind"] is not types.SimpleNamespace
    with pytest.raises(TypeError, match=r"copy\.copy\(\) copies numbers") as caught:
        session.run("import copy\ncopy.copy(tool)")
    assert "ClassOf" not in str(caught.value)
