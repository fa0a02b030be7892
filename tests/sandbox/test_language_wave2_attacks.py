"""Attacks on what the language opened in its second wave, against the language layer alone.

The surfaces: special methods on a program's own classes, private attributes (``self._count``)
on its own objects, ``super()``, ``type(x)``, the builtins ``bytes``, ``bytearray`` and
``hash``, ``from __future__`` directives, the bare ``except:`` and the explained NameError of
a withheld name. Each row is a program that tries to use one of them to reach a dunder, a frame,
a real module or the host's objects, to change ``data``, to swallow ``done()``/``fail()`` or
to lie to the child's own code, and the exact refusal it must meet. The tests after the table
check what the program gets when the attack is not refused outright: nothing of the host's.
"""

from __future__ import annotations

import types

import pytest

from ptcrun import _json
from ptcrun.errors import ToolError
from ptcrun.sandbox import execute
from ptcrun.sandbox.child import _exact, _failure, _pmap
from ptcrun.sandbox.child._compile import ProgramRejected
from ptcrun.sandbox.child._names import SPECIAL_METHODS
from tests.sandbox.inproc import DATA, Done, FakeBudget, Session, in_scope, refusal, run

PRIVATE = "is not allowed: names starting with '_' are private in the sandbox"
NOT_SPECIAL = "is not a special method a program's class may use"

SWALLOW = """
class Swallow:
    def __enter__(self):
        return self
    def __exit__(self, kind, exc, tb):
        return True
"""
OWN = """
class Own:
    def __init__(self):
        self._count = 1
    def __repr__(self):
        return "Own()"
own = Own()
"""
HOST_SUBCLASS = """
class Mine(host_class):
    def __init__(self):
        pass
mine = Mine()
"""

ATTACKS: dict[str, tuple[str, type[BaseException], str]] = {
    # --- special methods that would let a class answer for the sandbox, refused in the body
    "define_getattr": ("class A:\n    def __getattr__(self, name):\n        return 1", ProgramRejected, "special method '__getattr__' is not allowed in the sandbox: it would answer for every attribute name"),
    "define_getattribute": ("class A:\n    def __getattribute__(self, name):\n        return 1", ProgramRejected, "'__getattribute__' is not allowed"),
    "define_setattr": ("class A:\n    def __setattr__(self, name, value):\n        pass", ProgramRejected, "'__setattr__' is not allowed"),
    "define_new": ("class A:\n    def __new__(cls):\n        return data", ProgramRejected, "'__new__' is not allowed in the sandbox: it can return any object"),
    "define_length_hint": ("class A:\n    def __length_hint__(self):\n        return 10 ** 12", ProgramRejected, "'__length_hint__' is not allowed in the sandbox: list() reserves the memory"),
    "define_del": ("class A:\n    def __del__(self):\n        done(1)", ProgramRejected, "'__del__' is not allowed in the sandbox: it would run whenever the garbage collector"),
    "define_init_subclass": ("class A:\n    def __init_subclass__(cls):\n        pass", ProgramRejected, "'__init_subclass__' is not allowed"),
    "define_class_getitem": ("class A:\n    def __class_getitem__(cls, k):\n        pass", ProgramRejected, "'__class_getitem__' is not allowed"),
    "define_set_name": ("class A:\n    def __set_name__(self, owner, name):\n        pass", ProgramRejected, "'__set_name__' is not allowed"),
    "define_reduce": ("class A:\n    def __reduce__(self):\n        return (print, ('x',))", ProgramRejected, "'__reduce__' is not allowed in the sandbox: objects are never pickled"),
    "define_reduce_ex": ("class A:\n    def __reduce_ex__(self, p):\n        pass", ProgramRejected, "'__reduce_ex__' is not allowed"),
    "define_get_descriptor": ("class A:\n    def __get__(self, o, t):\n        pass", ProgramRejected, "'__get__' is not allowed"),
    "define_instancecheck": ("class A:\n    def __instancecheck__(self, o):\n        return True", ProgramRejected, "'__instancecheck__' is not allowed"),
    "define_mro_entries": ("class A:\n    def __mro_entries__(self, b):\n        return (object,)", ProgramRejected, "'__mro_entries__' is not allowed"),
    "define_class_property": ("class A:\n    @property\n    def __class__(self):\n        return int", ProgramRejected, "'__class__' is not allowed in the sandbox: an object's class cannot be changed or faked"),
    "define_dict": ("class A:\n    def __dict__(self):\n        pass", ProgramRejected, "'__dict__' is not allowed"),
    "slots_in_body": ("class A:\n    __slots__ = ('x',)", ProgramRejected, "'__slots__' is not allowed"),
    "getattr_by_assignment_in_body": ("class A:\n    __getattr__ = lambda self, n: 1", ProgramRejected, "'__getattr__' is not allowed"),
    "special_method_outside_a_class": ("def __repr__(self):\n    return 'x'", ProgramRejected, "special method '__repr__' can only be defined in a class body"),
    "special_method_in_a_function_in_a_class": ("class A:\n    def f(self):\n        def __iter__(s):\n            pass", ProgramRejected, "can only be defined in a class body"),
    "hook_named_method": ("class A:\n    def _getattr_(self, o, n):\n        pass\n    x = ().__class__", ProgramRejected, "'_getattr_' is not allowed: names of the form '_x_' are reserved"),
    "hook_named_class_attribute": ("class A:\n    _write_ = lambda o: o", ProgramRejected, "'_write_' is not allowed: names of the form '_x_' are reserved"),
    "print_collector_in_class_body": ("class A:\n    _print = None", ProgramRejected, "'_print' is not allowed: names of the form '_x_' are reserved"),
    "install_special_method_later": ("class A:\n    pass\nA.__eq__ = lambda a, b: True", ProgramRejected, "'__eq__' cannot be assigned in the sandbox"),
    "install_special_method_by_setattr": ("class A:\n    pass\nsetattr(A, '__len__', lambda a: 1)", AttributeError, f"'__len__' {PRIVATE}"),
    "change_class_of_own_object": (OWN + "own.__class__ = Own", ProgramRejected, "'__class__' cannot be assigned"),
    "change_class_by_setattr": (OWN + "setattr(own, '__class__', int)", AttributeError, PRIVATE),
    "metaclass_keyword": ("class A(metaclass=type):\n    pass", ProgramRejected, 'The keyword argument "metaclass" is not allowed'),
    # --- dunders of objects the program did not make stay refused
    "special_method_of_a_tuple": ("data.__len__()", AttributeError, f"'__len__' {PRIVATE}"),
    "special_method_of_an_int": ("(1).__add__(2)", AttributeError, "'__add__' is not allowed"),
    "special_method_of_a_host_object": ("budget.__init__()", AttributeError, "'__init__' is not allowed"),
    "special_method_of_a_module": ("import json\njson.__init__", AttributeError, "'__init__' is not allowed"),
    "special_method_of_a_builtin_class": ("int.__init__", AttributeError, "'__init__' is not allowed"),
    "call_of_type_stand_in": ("type.__call__('X', (), {})", AttributeError, "'__call__' is not allowed"),
    "class_of_a_foreign_object_walks_no_further": ("getattr(data.__class__, '__base__')", AttributeError, f"'__base__' {PRIVATE}"),
    "class_of_a_class_is_the_type_stand_in": (OWN + "Own.__class__('X', (), {'__len__': len})", TypeError, "type() takes exactly one argument"),
    "class_of_type": ("type.__class__('X', (), {})", TypeError, "type() takes exactly one argument"),
    "class_through_getattr_cannot_build": ("getattr(print, '__class__')(len, 1)", TypeError, "objects of class 'method' cannot be made in the sandbox"),
    "bases_of_own_class": (OWN + "Own.__bases__", ProgramRejected, f"'__bases__' {PRIVATE}"),
    "subclasses_through_type": ("type(1).__subclasses__()", ProgramRejected, f"'__subclasses__' {PRIVATE}"),
    "mro_of_own_class": (OWN + "Own.mro()", AttributeError, "'mro' is not allowed"),
    "dict_of_own_class": (OWN + "Own.__dict__", AttributeError, "'__dict__' is not allowed"),
    "dict_of_a_host_object": ("budget.__dict__", AttributeError, f"'__dict__' {PRIVATE}"),
    "dict_of_data": ("vars(data)", AttributeError, f"'__dict__' {PRIVATE}"),
    "dict_of_a_module": ("import json\nvars(json)", AttributeError, PRIVATE),
    "dict_of_a_function": ("def f():\n    pass\nf.__dict__", AttributeError, PRIVATE),
    "dict_of_a_host_subclass_instance": ("class E(ToolError):\n    pass\nvars(E('m', tool='t'))", AttributeError, "'__dict__' is not allowed"),
    "dict_through_super": (OWN + "super(Own, own).__dict__", AttributeError, "'__dict__' is not allowed"),
    "vars_of_the_namespace": ("vars()", TypeError, "vars() takes exactly one argument"),
    "globals_of_own_method": (OWN + "getattr(Own.__init__, '__globals__')", AttributeError, PRIVATE),
    "code_of_own_method": (OWN + "getattr(own.__repr__, '__code__')", AttributeError, PRIVATE),
    "name_of_a_module": ("import json\njson.__name__", AttributeError, f"'__name__' {PRIVATE}"),
    "name_of_data": ("data.__name__", AttributeError, f"'__name__' {PRIVATE}"),
    "dunder_name_that_is_not_special": (OWN + "getattr(own, '__weakref__')", AttributeError, PRIVATE),
    # --- private names: only on the program's own objects, only what the program defined
    "private_of_the_tools": ("tool._link", AttributeError, f"'_link' {PRIVATE}"),
    "private_of_the_budget": ("budget._link", AttributeError, PRIVATE),
    "private_of_data": ("data._x", AttributeError, PRIVATE),
    "private_of_a_module_proxy": ("import json\njson._members", AttributeError, f"'_members' {PRIVATE}"),
    "private_of_a_container_stand_in": ("list._type", AttributeError, PRIVATE),
    "private_of_type_stand_in": ("type._containers", AttributeError, PRIVATE),
    "private_of_a_host_class": ("host_class._thread_main", AttributeError, PRIVATE),
    "private_of_a_host_class_through_a_subclass": (HOST_SUBCLASS + "Mine._thread_main", AttributeError, f"'_thread_main' {PRIVATE}"),
    "private_of_an_instance_of_a_host_subclass": (HOST_SUBCLASS + "mine._thread_main", AttributeError, PRIVATE),
    "private_of_a_host_class_through_super": (HOST_SUBCLASS + "super(Mine, mine)._work", AttributeError, PRIVATE),
    "private_read_by_getattr": ("getattr(tool, '_link', None)", AttributeError, PRIVATE),
    "private_read_by_hasattr": ("hasattr(tool, '_link')", AttributeError, PRIVATE),
    "private_write_to_a_host_object": ("setattr(budget, '_link', None)", AttributeError, PRIVATE),
    "private_write_through_attribute": ("budget._link = None", TypeError, "cannot set attribute '_link'"),
    "private_of_a_failure": ("Failure(0, 'E', 'm')._payload", AttributeError, PRIVATE),
    "private_of_an_exception": ("try:\n    1/0\nexcept Exception as e:\n    e._x", AttributeError, PRIVATE),
    "mangled_name_outside_the_class": (OWN.replace("self._count", "self.__count") + "own.__count", AttributeError, "'Own' object has no attribute '__count'"),
    # --- super: only ever the program's own classes behind it
    "super_of_a_foreign_object": ("super(int, 1).__add__(1)", AttributeError, "'__add__' is not allowed"),
    "super_of_a_host_object": ("super(FakeBudget, budget).__init__()", AttributeError, "'__init__' is not allowed"),
    "super_class_attribute": (OWN + "getattr(super(Own, own).__class__, '__self__')", AttributeError, PRIVATE),
    "super_of_type": (OWN + "super(type, Own)", TypeError, "super() argument 1 must be a type"),
    "super_getattribute": (OWN + "super(Own, own).__getattribute__('x')", ProgramRejected, f"'__getattribute__' {PRIVATE}"),
    "super_self_class": (OWN + "super(Own, own).__self_class__", ProgramRejected, PRIVATE),
    "super_thisclass_by_getattr": (OWN + "getattr(super(Own, own), '__thisclass__')", AttributeError, PRIVATE),
    # --- type: one argument, never a metaclass
    "type_three_arguments": ("type('X', (object,), {'__len__': len})", TypeError, "type() takes exactly one argument"),
    "type_keywords": ("type(1, x=2)", TypeError, "type() takes exactly one argument"),
    "type_as_a_base": ("class Meta(type):\n    pass", TypeError, "cannot derive from type in the sandbox"),
    "type_of_a_host_metaclass_user": ("type(abstract)", TypeError, "its metaclass 'ABCMeta'"),
    "type_attribute": ("type.mro()", AttributeError, "'mro' is not allowed"),
    "type_write": ("type.x = 1", TypeError, "cannot set attribute"),
    "type_of_the_tools": ("type(tool)._make_caller", AttributeError, PRIVATE),
    "type_of_a_module_proxy": ("import json\ntype(json)._members", AttributeError, PRIVATE),
    "type_of_a_container_stand_in": ("type(list)._type", AttributeError, PRIVATE),
    # --- special methods that lie to the child's own code
    "re_flags_that_lie": ("import re\nclass Flags:\n    def __index__(self):\n        return re.DEBUG\n    def __and__(self, other):\n        return 0\n    __rand__ = __and__\nre.compile('a', Flags())", TypeError, "re flags must be an int, not 'Flags'"),
    # --- the new builtins
    "bytearray_of_data": ("bytearray(data)", TypeError, "'str' object cannot be interpreted as an integer"),
    "memoryview_stays_withheld": ("memoryview(b'x')", NameError, "name 'memoryview' is not defined"),
    "id_stays_withheld": ("id(data)", NameError, "name 'id' is not defined"),
    "bind_dunder_name": ("__name__ = 'x'", ProgramRejected, f"'__name__' {PRIVATE}"),
    "module_name_is_no_door": ("getattr(__name__.__class__, '__base__')", AttributeError, f"'__base__' {PRIVATE}"),
    # --- directives and imports
    "future_import_late": ("x = 1\nfrom __future__ import annotations", ProgramRejected, "from __future__ imports must occur at the beginning"),
    "future_braces": ("from __future__ import braces", ProgramRejected, "future feature braces is not defined"),
    "future_parser_change": ("from __future__ import barry_as_FLUFL", ProgramRejected, "future feature barry_as_FLUFL is not defined"),
    "future_module": ("import __future__", ProgramRejected, f"'__future__' {PRIVATE}"),
    "future_module_by_name": ("from __future__ import annotations\nimport json\njson.__future__", ProgramRejected, PRIVATE),
    # --- __members__ of enums only, read-only
    "members_of_a_module": ("import json\njson.__members__", AttributeError, f"'__members__' {PRIVATE}"),
    "members_of_own_plain_class": (OWN + "Own.__members__", AttributeError, f"'__members__' {PRIVATE}"),
    "members_of_an_enum_member": ("import enum\nclass C(enum.Enum):\n    A = 1\nC.A.__members__", AttributeError, "'__members__' is not allowed"),
    "members_written": ("import enum\nclass C(enum.Enum):\n    A = 1\nC.__members__['B'] = 2", TypeError, "cannot assign to an item of a 'mappingproxy' object"),
    "members_assigned": ("import enum\nclass C(enum.Enum):\n    A = 1\nC.__members__ = {}", ProgramRejected, "'__members__' cannot be assigned"),
    # --- annotations are kept as written, and still checked
    "hook_name_in_an_annotation": ("def f(x: _getattr_):\n    pass", ProgramRejected, "'_getattr_' is not allowed: names of the form '_x_' are reserved"),
    "dunder_walk_in_an_annotation": ("x: ().__class__.__base__ = 1", ProgramRejected, f"'__base__' {PRIVATE}"),
    "dunder_walk_in_a_return_annotation": ("def f() -> ().__class__.__subclasses__:\n    pass", ProgramRejected, f"'__subclasses__' {PRIVATE}"),
    # --- catching what ends the program
    "catch_base_exception": ("try:\n    done(1)\nexcept BaseException:\n    pass", ProgramRejected, "'except BaseException' is not allowed"),
}


@pytest.mark.parametrize(("source", "error", "message"), ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused(source: str, error: type[BaseException], message: str) -> None:
    import contextlib

    session = Session(host_class=_pmap.Fanout, FakeBudget=FakeBudget, abstract=contextlib.AbstractContextManager,
                      Failure=_failure.Failure, tool=_failure.Failure(0, "x", "y"), ToolError=ToolError)
    assert message in refusal(session, source, error)


CONTEXTS = {
    "function": "def attack():\n{body}\nattack()",
    "method": "class Attacker:\n    def run(self):\n{body2}\nAttacker().run()",
    "special_method": "class Attacker:\n    def __repr__(self):\n{body2}\n        return 'x'\nrepr(Attacker())",
    "exit": "class Attacker:\n    def __enter__(self):\n        return self\n    def __exit__(self, *exc):\n{body2}\nwith Attacker():\n    pass",
    "generator": "def attack():\n{body}\n    yield\nlist(attack())",
    "sort_key": "def attack(_):\n{body}\nsorted([1, 2], key=attack)",
}
# Rows that define classes or imports only compile at the top level or inside a function.
_TOP_LEVEL_ONLY = {
    name for name, (source, _, _) in ATTACKS.items()
    if "from __future__" in source or "class " in source
}


@pytest.mark.parametrize("context", CONTEXTS.values(), ids=CONTEXTS.keys())
@pytest.mark.parametrize(
    ("source", "error", "message"),
    [row for name, row in ATTACKS.items() if name not in _TOP_LEVEL_ONLY],
    ids=[name for name in ATTACKS if name not in _TOP_LEVEL_ONLY],
)
def test_attack_is_refused_in_any_scope(
    source: str, error: type[BaseException], message: str, context: str
) -> None:
    test_attack_is_refused(in_scope(context, source), error, message)


def test_special_methods_are_the_listed_ones_and_none_that_reach_the_interpreter():
    dangerous = {
        "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__dir__", "__new__",
        "__del__", "__init_subclass__", "__set_name__", "__class_getitem__", "__reduce__",
        "__reduce_ex__", "__getstate__", "__setstate__", "__get__", "__set__", "__delete__",
        "__class__", "__dict__", "__slots__", "__instancecheck__", "__subclasscheck__",
        "__mro_entries__", "__prepare__", "__copy__", "__deepcopy__", "__weakref__",
        "__subclasses__", "__globals__", "__code__", "__builtins__", "__import__",
    }
    assert not dangerous & SPECIAL_METHODS


# --- what the program gets when an attack is not refused: nothing of the host's ------------


def test_own_private_attributes_and_special_methods_work():
    out = Session().run("""
        class Counter:
            def __init__(self):
                self._count = 0
                self.__hidden = "h"
            def bump(self):
                self._count += 1
                return self
            def __len__(self):
                return self._count
            def __repr__(self):
                return f"{self.__class__.__name__}({self._count}, {self.__hidden})"
            def __iadd__(self, n):
                self._count += n
                return self
        c = Counter().bump()
        c += 2
        setattr(c, "_note", "n")
        print(c, len(c), getattr(c, "_note"), hasattr(c, "_missing"), c._Counter__hidden)
    """)
    assert out == "Counter(3, h) 3 n False h\n"


def test_dict_and_vars_of_own_objects_work_and_writes_stay_harmless():
    session = Session()
    out = session.run("""
        import json
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y
        class Error(ValueError):
            def __init__(self, code):
                super().__init__(code)
                self.code = code
        p = Point(1, 2)
        p.__dict__["z"] = 3
        text = json.dumps(vars(p))
        vars(p)["__class__"] = int
        vars(p)["__eq__"] = lambda a, b: True
        print(text, vars(Error(7)), type(p).__name__, p == Point(1, 2),
              getattr(p, "missing", "default"))
    """)
    # an instance's dict cannot change its class or its special methods
    assert out == '{"x": 1, "y": 2, "z": 3} {\'code\': 7} Point False default\n'


def test_an_exit_that_calls_done_or_raises_over_done_cannot_hide_it():
    session = Session()
    session.run("""
        class Trap:
            def __enter__(self):
                return self
            def __exit__(self, kind, exc, tb):
                self.kind, self.exc, self.tb = kind, exc, tb
                raise ValueError("raised over done")
        trap = Trap()
    """)
    with pytest.raises(ValueError, match="raised over done"):
        session.run("try:\n    with trap:\n        done(1)\nexcept ValueError:\n    print('caught')")
    assert session.writes == []
    # the host's exception never reached program code: called as on a normal exit
    assert (session["trap"].kind, session["trap"].exc, session["trap"].tb) == (None, None, None)


def test_an_exit_cannot_swallow_an_error_raised_over_done():
    session = Session()
    session.run(SWALLOW)
    with pytest.raises(ValueError, match="over done"):
        session.run("""
            with Swallow():
                try:
                    done(1)
                finally:
                    raise ValueError("over done")
            print("still running")
        """)
    assert session.writes == []


def test_an_exit_gets_no_traceback_and_so_no_frame():
    session = Session()
    session.run("""
        class Keep:
            def __enter__(self):
                return self
            def __exit__(self, kind, exc, tb):
                self.tb = tb
                return True
        k = Keep()
        with k:
            raise ValueError(1)
    """)
    assert session["k"].tb is None


def test_an_exit_whose_truth_lies_cannot_swallow_done():
    session = Session()
    with pytest.raises(Done):
        session.run("""
            class Truthy:
                def __bool__(self):
                    return True
            class Manager:
                def __enter__(self):
                    return self
                def __exit__(self, *exc):
                    return Truthy()
            with Manager():
                fail("stop")
            print("still running")
        """)
    assert session.writes == []


def test_a_bare_except_catches_errors_but_not_done():
    session = Session()
    assert session.run("try:\n    1/0\nexcept:\n    print('caught')") == "caught\n"
    with pytest.raises(Done):
        session.run("try:\n    done(1)\nexcept:\n    print('swallowed')")
    assert session.writes == ["caught\n"]


def test_special_methods_cannot_change_data_or_the_host():
    session = Session()
    session.run("""
        class Sneaky:
            def __radd__(self, other):
                try:
                    other[0] = "changed"
                except TypeError:
                    pass
                return ("mine",)
            def __eq__(self, other):
                return True
            def __hash__(self):
                return hash(data)
        data += Sneaky()
        table = {Sneaky(): 1}
    """)
    assert session.host["data"] == DATA
    assert session["data"] == ("mine",)


def test_a_repr_that_recurses_is_a_clean_error_and_renders_as_a_stand_in():
    session = Session()
    session.run("class Loop:\n    def __repr__(self):\n        return repr(self)\nloop = Loop()")
    with pytest.raises(RecursionError):
        session.run("print(loop)")
    assert _exact.text(session["loop"]) == "<Loop object whose text could not be read>"


def test_a_str_that_calls_done_cannot_break_the_child_rendering():
    session = Session()
    session.run("""
        class Boom(Exception):
            def __str__(self):
                done("from __str__")
        boom = Boom()
    """)
    payload = _exact.error_payload(session["boom"])
    assert payload == {"type": "Boom", "message": "<Boom whose message could not be read>"}


def test_lying_numbers_and_names_are_read_from_their_real_storage():
    session = Session()
    session.run("""
        class Many(int):
            def __index__(self):
                return 10 ** 9
            def __int__(self):
                return 10 ** 9
        class Name(str):
            def __str__(self):
                return "__globals__"
            def __eq__(self, other):
                return True
            def __hash__(self):
                return hash("__globals__")
        n = Many(2)
        name = Name("plain")
    """)
    assert _exact.whole_number(session["n"], "concurrency") == 2
    assert _exact.plain_str(session["name"], "kind") == "plain"
    assert _json.to_json({session["name"]: session["n"]}, what="answer") == {"plain": 2}
    with pytest.raises(TypeError, match="attribute name must be a string"):
        session.run("getattr(len, name)")


def test_type_and_name_read_as_in_python():
    out = Session().run("""
        class Point:
            pass
        def f():
            pass
        print(type(data).__name__, type(1) is int, type([]) is list, type(Point()) is Point,
              type(type) is type, isinstance(list, type), Point.__name__, f.__name__,
              type(data) == tuple, len.__name__)
    """)
    assert out == "tuple True True True True True Point f True len\n"


def test_names_read_through_the_new_surfaces_are_exact_strings():
    session = Session()
    session.run("class Point:\n    pass\nname = Point.__name__\nkind = type(1).__name__")
    assert type(session["name"]) is str and type(session["kind"]) is str


def test_withheld_names_explain_themselves_to_the_program():
    out = Session().run("""
        for attempt in ("open('x')", "dir(data)", "exit()", "lenn(data)"):
            try:
                if attempt.startswith("open"):
                    open("x")
                elif attempt.startswith("dir"):
                    dir(data)
                elif attempt.startswith("exit"):
                    exit()
                else:
                    lenn(data)
            except NameError as e:
                print(e)
    """)
    assert out.splitlines() == [
        ("name 'open' is not available in the sandbox: the corpus is `data`, and files and the "
        "network are reached through tools (tool.NAME(...))"),
        ("name 'dir' is not available in the sandbox: print the object, or test one name with "
        "hasattr(obj, 'name')"),
        ("name 'exit' is not available in the sandbox: the program ends with done(answer) or "
        "fail(reason)"),
        "name 'lenn' is not defined. Did you mean: 'len'?",
    ]


def test_a_message_the_program_wrote_is_not_rewritten():
    out = Session().run("""
        try:
            raise NameError("name 'open' is not defined")
        except NameError as e:
            print(e)
    """)
    assert out == "name 'open' is not defined\n"


def test_withheld_names_and_typos_are_explained_in_the_child_report():
    result = execute("def count():\n    total = 0\n    return totl\ncount()")
    assert result.error.kind == "NameError"
    assert result.error.message == "name 'totl' is not defined. Did you mean: 'total'?"
    result = execute("globals()")
    assert result.error.message == (
        "name 'globals' is not available in the sandbox: keep the values you look up by name "
        "in a dict of your own"
    )
    result = execute("import json\nprint(jsn.dumps(1))")
    assert result.error.message == "name 'jsn' is not defined. Did you mean: 'json'?"
    assert execute("zzqq").error.message == "name 'zzqq' is not defined"


def test_bytes_and_bytearrays_do_not_cross_the_boundary():
    assert execute("done(bytes(3))").error.kind == "NotJSON"
    assert execute("done({'b': bytearray(b'x')})").error.kind == "NotJSON"
    assert execute("b = bytearray(b'ab')\nb[0] = 65\nb += b'c'\ndone(b.decode())").answer == "Abc"


def test_future_annotations_are_accepted_and_never_evaluated():
    out = Session().run("""
        from __future__ import annotations
        def f(x: print("evaluated")) -> open("x"):
            return x
        class Row:
            value: print("evaluated too")
        print(f(1))
    """)
    assert out == "1\n"


def test_lying_objects_reach_a_real_tool_and_done_as_their_real_values():
    from tests.sandbox.conformance import Case, run_child

    def record(text: str, count: int, *, key: str = "") -> list[object]:
        return [text, count, key]

    outcome = run_child(Case("""
        class Text(str):
            def __str__(self):
                return "lie"
            def __eq__(self, other):
                return False
            def __hash__(self):
                return 0
        class Count(int):
            def __index__(self):
                return 10 ** 6
            def __int__(self):
                return 10 ** 6
            def __repr__(self):
                return repr(self)
        got = tool.record(Text("real"), Count(2), **{Text("key"): Text("v")})
        print(Text("real"), got)
        done({Text("a"): Count(1), "b": [Text("c")]})
    """, {"record": record}))
    assert outcome.calls == (("record", ("real", 2), (("key", "v"),)),)
    assert outcome.output == "lie ['real', 2, 'v']\n"
    assert (outcome.status, outcome.answer) == ("done", {"a": 1, "b": ["c"]})


# --- type() and __class__ of objects whose class a program cannot name ----------------------

# Objects the sandbox made, whose classes a program cannot name: type() of each is a stand-in
# that answers isinstance() and __name__, and neither builds an object nor can be derived from.
UNNAMEABLE = {
    "a module proxy": ("json", "ModuleProxy"),
    "print": ("print", "method"),
    "a function": ("(lambda: 0)", "function"),
    "a builtin function": ("len", "builtin_function_or_method"),
    "a generator": ("(lambda: (yield))()", "generator"),
    "an iterator": ("iter([])", "list_iterator"),
    "None": ("None", "NoneType"),
    "a dict view": ("{}.keys()", "dict_keys"),
    "a csv reader": ("csv.reader([])", "reader"),
    "a bound random method": ("random.random", "builtin_function_or_method"),
    "an attrgetter": ("operator.attrgetter('real')", "_AttrGetter"),
    "a dataclass field": ("dataclasses.field()", "Field"),
}
_IMPORTS = "import json, csv, random, operator, dataclasses\n"


@pytest.mark.parametrize(("expression", "name"), UNNAMEABLE.values(), ids=UNNAMEABLE.keys())
def test_the_class_of_an_object_the_sandbox_made_cannot_build_or_be_derived_from(
    expression: str, name: str
) -> None:
    session = Session()
    session.run(f"{_IMPORTS}x = {expression}\nT = type(x)")
    out = session.run("""
        print(T.__name__, isinstance(x, T), T is type(x), x.__class__ is T, type(T) is type,
              isinstance(T, type), issubclass(T, T), T == x.__class__)
    """)
    assert out == f"{name} True True True True True True True\n"
    assert session["T"] is not builtins_type(session["x"])  # a stand-in, never the class
    attempts = {
        "T()": (TypeError, f"objects of class {name!r} cannot be made in the sandbox"),
        "T(1, 2, x=3)": (TypeError, "cannot be made"),
        "x.__class__(x)": (TypeError, "cannot be made"),
        "class Sub(T):\n    pass": (TypeError, f"a class cannot derive from {name!r}"),
        "class Sub(int, x.__class__):\n    pass": (TypeError, "cannot derive"),
        "T.mro": (AttributeError, "'mro' is not allowed"),
        "T.anything": (AttributeError, f"'anything' of class {name!r} is not available"),
        "getattr(T, '_type')": (AttributeError, PRIVATE),
        "getattr(T, '__init__')": (AttributeError, PRIVATE),
        "getattr(T, '__call__')": (AttributeError, PRIVATE),
        "T.x = 1": (TypeError, "cannot set attribute"),
        "super(T, x)": (TypeError, "super() argument 1 must be a type"),
        "type(T)('X', (), {})": (TypeError, "type() takes exactly one argument"),
    }
    for source, (error, message) in attempts.items():
        with pytest.raises(error) as info:
            session.run(source)
        assert message in str(info.value), source
    assert session.host["budget"].remaining == 1000


def builtins_type(obj: object) -> type:
    return type(obj)


def test_except_catches_through_the_class_a_program_cannot_name():
    out = Session().run("""
        import base64
        try:
            base64.b64decode("a")
        except Exception as e:
            kind, first = type(e), e
        try:
            base64.b64decode("b")
        except kind as again:
            print(type(again).__name__, again.__class__.__name__, isinstance(again, kind))
        try:
            base64.b64decode("c")
        except (KeyError, first.__class__):
            print("caught in a tuple")
    """)
    assert out == "Error Error True\ncaught in a tuple\n"


def test_classes_a_program_can_name_come_back_as_themselves():
    session = Session(Failure=_failure.Failure)
    out = session.run("""
        import collections, decimal, re, enum, io
        class Own:
            pass
        Color = enum.Enum("Color", "RED GREEN")
        values = [1, "s", [], {}, (), set(), collections.Counter(), decimal.Decimal(1), Own(),
                  ValueError(), 1.5, b"", io.StringIO()]
        print([type(v).__name__ for v in values])
        print(type(Color.RED) is Color, type([]) is list, type(decimal.Decimal(1)) is decimal.Decimal,
              type(Own()) is Own, type(Failure(0, "E", "m")) is Failure, (1).__class__ is int,
              type(re.compile("a")) is re.Pattern, type(x := [1])(x))
    """)
    assert out.splitlines() == [
        ("['int', 'str', 'list', 'dict', 'tuple', 'set', 'Counter', 'Decimal', 'Own', "
         "'ValueError', 'float', 'bytes', 'StringIO']"),
        "True True True True True True True [1]",
    ]


def test_e_class_name_reads_as_in_python_and_class_of_a_class_is_type():
    out = Session().run("""
        class Own:
            pass
        try:
            {}["k"]
        except Exception as e:
            print(e.__class__.__name__, type(e).__name__, e.__class__ is KeyError)
        print(Own.__class__ is type, Own().__class__ is Own, type.__class__ is type,
              list.__class__ is type, "s".__class__ is str, data.__class__ is tuple)
    """)
    assert out == "KeyError KeyError True\nTrue True True True True True\n"


def test_the_classes_of_the_real_host_objects_build_nothing_in_a_child():
    """type() of tool, budget, budget.remaining, pmap, a module proxy and a mapping corpus."""
    from tests.sandbox.conformance import Case, run_child

    outcome = run_child(Case("""
        import json
        class Link:
            def open_request(self):
                print("program code ran")
                return self
        log = []
        for name, value in [("tool", tool), ("budget", budget), ("remaining", budget.remaining),
                            ("pmap", pmap), ("json", json), ("data", data)]:
            T = type(value)
            for attempt in (lambda: T(Link(), ["echo"]), lambda: T(Link()), lambda: T("os", {}),
                            lambda: T({"tokens": 10**9})):
                try:
                    attempt()
                    log.append(f"{name} built")
                except TypeError as e:
                    pass
            try:
                class Sub(T):
                    pass
                log.append(f"{name} derived")
            except TypeError:
                pass
            try:
                T.estimate
                log.append(f"{name} attribute")
            except AttributeError:
                pass
            log.append(f"{T.__name__}:{isinstance(value, T)}:{value.__class__ is T}")
        print(log)
        done(len(log))
    """, {"echo": lambda text: text}, data={"a": ("x",)}))
    assert outcome.output == (
        "['Tools:True:True', 'Budget:True:True', 'Remaining:True:True', 'method:True:True', "
        "'ModuleProxy:True:True', 'mappingproxy:True:True']\n"
    )
    assert (outcome.status, outcome.answer) == ("done", 6)


def test_no_message_a_program_gets_names_the_stand_in_for_a_class() -> None:
    session = Session(tool=types.SimpleNamespace(name="tool"))
    session.run("T = type(tool)\nclass Own:\n    pass\nown = Own()")
    attempts = {
        "super(T, tool)": "super() argument 1 must be a type, not 'SimpleNamespace', the class of an object the sandbox made",
        "super(type(None))": "not 'NoneType', the class of an object the sandbox made",
        "super(type, Own)": "super() argument 1 must be a type, not 'type': metaclasses are not available",
        "super(Own, T)": "super(type, obj): obj must be an instance or subtype of type",
        "T()": "objects of class 'SimpleNamespace' cannot be made",
        "class Sub(T):\n    pass": "a class cannot derive from 'SimpleNamespace'",
        "import copy\ncopy.copy(tool)": "not 'SimpleNamespace' objects",
        # Python's own words, as of a class: the stand-ins' classes are named "type".
        "len(T)": "object of type 'type' has no len()",
        "T + 1": "unsupported operand type(s) for +: 'type' and 'int'",
        "list(T)": "'type' object is not iterable",
        "len(list)": "object of type 'type' has no len()",
        "type + 1": "unsupported operand type(s) for +: 'type' and 'int'",
    }
    for source, message in attempts.items():
        with pytest.raises(TypeError) as caught:
            session.run(source)
        assert message in str(caught.value), source
        assert "ClassOf" not in str(caught.value) and "TypeOf" not in str(caught.value), source
        assert "ContainerType" not in str(caught.value), source


def test_super_still_finds_the_method_class_and_self_with_no_arguments() -> None:
    out = run("""
class Rows(list):
    def append(self, x):
        super().append(x * 2)
        super(Rows, self).append(x)
class A:
    def f(self):
        return "A"
class B(A):
    def f(self):
        s = super()
        return super().f() + "B", type(s) is super, isinstance(s, super)
rows = Rows()
rows.append(1)
print(rows, B().f(), type(super(B, B())) is super, isinstance(super(B, B()), super))
print(type(super(list, rows)) is super, super(Rows, rows).count(2))
""")
    assert out == "[2, 1] ('AB', True, True) True True\nTrue 1\n"
