"""Known escapes, one per row, against the language layer alone (no child process, no OS layers).

Each row is a program that tries to get past one guard and the exact rejection it must meet:
refused at compile time (ProgramRejected) or by a guard at run time. The invariant tests at
the end check that the host's objects come out untouched.
"""

from __future__ import annotations

import json
import math
import textwrap

import pytest

from ptcrun.sandbox._language import ALLOWED_MODULES
from ptcrun.sandbox.child._compile import ProgramRejected
from tests.sandbox.inproc import DATA, Done, Session, in_scope, refusal

PRIVATE = "is not allowed: names starting with '_' are private in the sandbox"
RESERVED = "is not allowed: names of the form '_x_' are reserved for the sandbox"
HIDDEN = "is not allowed: frame, code and class-hierarchy attributes are hidden"
NOT_CHANGEABLE = "can be changed in the sandbox"
ALLOWED_LIST = "allowed modules: " + ", ".join(ALLOWED_MODULES)

ATTACKS: dict[str, tuple[str, type[BaseException], str]] = {
    # --- dunder access, direct and computed
    "dunder_attribute": ("().__class__.__base__.__subclasses__()", ProgramRejected, f"'__base__' {PRIVATE}"),
    "dunder_dict_of_a_foreign_object": ("().__dict__", AttributeError, f"'__dict__' {PRIVATE}"),
    "getattr_dunder": ("getattr((), '__base__')", AttributeError, f"'__base__' {PRIVATE}"),
    "getattr_computed_dunder": ("name = '_' * 2 + 'base' + '_' * 2\ngetattr(int, name)", AttributeError, f"'__base__' {PRIVATE}"),
    "getattr_dunder_with_default": ("getattr(1, '__dict__', None)", AttributeError, PRIVATE),
    "hasattr_dunder": ("hasattr(1, '__globals__')", AttributeError, f"'__globals__' {PRIVATE}"),
    "getattr_non_string_name": ("getattr(1, 5)", TypeError, "attribute name must be a string, not 'int'"),
    "getattr_str_subclass_name": ("class N(str):\n    def startswith(self, prefix):\n        return False\ngetattr(len, N('__self__'))", TypeError, "attribute name must be a string, not 'N'"),
    "setattr_str_subclass_name": ("class N(str):\n    def startswith(self, prefix):\n        return False\nclass A:\n    pass\nsetattr(A, N('__eq__'), 1)", TypeError, "attribute name must be a string, not 'N'"),
    "function_globals": ("f = lambda: 0\ngetattr(f, '__globals__')", AttributeError, PRIVATE),
    "exception_traceback": ("try:\n    1/0\nexcept Exception as e:\n    getattr(e, '__traceback__')", AttributeError, PRIVATE),
    "object_subclasses": ("getattr(object, '__subclasses__')()", AttributeError, PRIVATE),
    "container_type_dunder": ("getattr(list, '__dict__')", AttributeError, PRIVATE),
    "setattr_dunder_on_own_class": ("class A:\n    pass\nsetattr(A, '__eq__', lambda a, b: True)", AttributeError, f"'__eq__' {PRIVATE}"),
    "setattr_dunder_on_instance": ("class A:\n    pass\nsetattr(A(), '__class__', int)", AttributeError, PRIVATE),
    # --- class-hierarchy walks
    "mro_call": ("ValueError.mro()", AttributeError, f"'mro' {HIDDEN}"),
    "mro_via_getattr": ("getattr(int, 'mro')()[-1]", AttributeError, f"'mro' {HIDDEN}"),
    # --- frames and code objects
    "generator_frame": ("g = (x for x in [1])\ng.gi_frame.f_back.f_globals", ProgramRejected, "'gi_frame' is not allowed"),
    "generator_frame_getattr": ("g = (x for x in [1])\ngetattr(g, 'gi_frame')", AttributeError, f"'gi_frame' {HIDDEN}"),
    "generator_code_getattr": ("def g():\n    yield 1\ngetattr(g(), 'gi_code')", AttributeError, f"'gi_code' {HIDDEN}"),
    "traceback_frame_getattr": ("try:\n    1/0\nexcept Exception as e:\n    t = e.with_traceback(None)\n    getattr(t, 'tb_frame')", AttributeError, f"'tb_frame' {HIDDEN}"),
    "fullwidth_frame_attribute": ("g = (x for x in [1])\ng.\uff47\uff49_frame", ProgramRejected, "'gi_frame' is not allowed"),
    "frame_back": ("x.f_back", ProgramRejected, "'f_back' is not allowed"),
    "frame_globals_getattr": ("getattr(1, 'f_globals')", AttributeError, f"'f_globals' {HIDDEN}"),
    "code_bytes": ("x.co_code", ProgramRejected, "'co_code' is not allowed"),
    # --- dangerous builtins are simply absent
    "open": ("open('/etc/hostname')", NameError, "name 'open' is not defined"),
    "eval_as_value": ("e = eval\ne('1')", NameError, "name 'eval' is not defined"),
    "exec_call": ("exec('import os')", ProgramRejected, "Exec calls are not allowed."),
    "compile": ("compile('1', 'x', 'eval')", NameError, "name 'compile' is not defined"),
    "globals": ("globals()", NameError, "name 'globals' is not defined"),
    "locals": ("locals()", NameError, "name 'locals' is not defined"),
    "vars": ("vars(1)", AttributeError, f"'__dict__' {PRIVATE}"),
    "vars_without_argument": ("vars()", TypeError, "vars() takes exactly one argument in the sandbox"),
    "dir": ("dir(1)", NameError, "name 'dir' is not defined"),
    "type_three_arguments": ("type('X', (object,), {})", TypeError, "type() takes exactly one argument in the sandbox"),
    "dunder_import": ("__import__('os')", ProgramRejected, f"'__import__' {PRIVATE}"),
    "builtins_name": ("__builtins__['open']", ProgramRejected, f"'__builtins__' {PRIVATE}"),
    "breakpoint": ("breakpoint()", ProgramRejected, "'breakpoint' is not available in the sandbox: there is no debugger"),
    "input": ("input()", NameError, "name 'input' is not defined"),
    "help": ("help(1)", NameError, "name 'help' is not defined"),
    "memoryview": ("memoryview(b'x')", NameError, "name 'memoryview' is not defined"),
    "id": ("id(1)", NameError, "name 'id' is not defined"),
    "metaclass_keyword": ("class A(metaclass=list):\n    pass", ProgramRejected, 'The keyword argument "metaclass" is not allowed'),
    # --- imports
    "import_os": ("import os", ImportError, f"import of 'os' is not allowed; {ALLOWED_LIST}"),
    "import_sys": ("import sys", ImportError, "import of 'sys' is not allowed"),
    "import_subprocess": ("import subprocess", ImportError, "import of 'subprocess' is not allowed"),
    "import_importlib": ("import importlib", ImportError, "import of 'importlib' is not allowed"),
    "import_builtins": ("import builtins", ProgramRejected, "'builtins' is a reserved name"),
    "import_builtins_aliased": ("from builtins import open", ImportError, "import of 'builtins' is not allowed"),
    "import_secrets": ("import secrets", ImportError, "import of 'secrets' is not allowed"),
    "import_from_os": ("from os import path", ImportError, "import of 'os' is not allowed"),
    "import_submodule": ("import collections.abc", ImportError, "import of 'collections.abc' is not allowed"),
    "import_json_decoder": ("import json.decoder", ImportError, "import of 'json.decoder' is not allowed"),
    "relative_import": ("from . import x", ImportError, "relative imports are not allowed in the sandbox"),
    "relative_import_of_module": ("from .json import loads", ImportError, "relative imports are not allowed"),
    # --- module-valued attributes and names the proxies leave out
    "json_codecs": ("import json\njson.codecs.open('/etc/hostname')", AttributeError, "module 'json' has no attribute 'codecs' in the sandbox; it offers: JSONDecodeError"),
    "from_json_import_codecs": ("from json import codecs", ImportError, "cannot import name 'codecs' from 'json' in the sandbox"),
    "from_json_import_decoder": ("from json import decoder", ImportError, "cannot import name 'decoder' from 'json'"),
    "re_enum": ("import re\nre.enum.bltns.open", AttributeError, "module 're' has no attribute 'enum'"),
    "from_re_import_enum": ("from re import enum", ImportError, "cannot import name 'enum' from 're'"),
    "datetime_sys": ("import datetime\ndatetime.sys.modules['os']", AttributeError, "module 'datetime' has no attribute 'sys'"),
    "datetime_capsule": ("import datetime\ndatetime.datetime_CAPI", AttributeError, "has no attribute 'datetime_CAPI'"),
    "statistics_sys": ("import statistics\nstatistics.sys", AttributeError, "module 'statistics' has no attribute 'sys'"),
    "statistics_random": ("from statistics import random", ImportError, "cannot import name 'random' from 'statistics'"),
    "textwrap_re": ("import textwrap\ntextwrap.re.enum.sys", AttributeError, "module 'textwrap' has no attribute 're'"),
    "collections_abc_attribute": ("import collections\ncollections.abc", AttributeError, "has no attribute 'abc'"),
    "module_attribute_via_getattr": ("import json\ngetattr(json, 'codecs')", AttributeError, "has no attribute 'codecs'"),
    "update_wrapper": ("import functools\nfunctools.update_wrapper", AttributeError, "module 'functools' has no attribute 'update_wrapper'"),
    "from_functools_import_wraps": ("from functools import wraps", ImportError, "cannot import name 'wraps' from 'functools'"),
    "total_ordering_of_a_builtin_class": ("from functools import total_ordering\ntotal_ordering(int)", TypeError, "decorates the program's own classes in the sandbox, not 'int'"),
    "total_ordering_of_a_host_class": ("import functools, json\nfunctools.total_ordering(json.JSONDecoder)", TypeError, "not 'JSONDecoder'"),
    "string_formatter": ("import string\nstring.Formatter().format('{0.__class__}', 1)", AttributeError, "module 'string' has no attribute 'Formatter'"),
    "from_string_import_formatter": ("from string import Formatter", ImportError, "cannot import name 'Formatter' from 'string'"),
    "textwrap_shared_class_state": ("import textwrap\ntextwrap.TextWrapper", AttributeError, "has no attribute 'TextWrapper'"),
    "re_debug_flag": ("import re\nre.DEBUG", AttributeError, "module 're' has no attribute 'DEBUG'"),
    "re_debug_flag_by_value": ("import re\nre.compile('a', 128)", ValueError, "re.DEBUG is not available in the sandbox"),
    "proxy_name_dunder": ("import json\ngetattr(json, '__name__')", AttributeError, PRIVATE),
    # --- indirect getattr
    "map_getattr": ("list(map(getattr, [1], ['__dict__']))", AttributeError, f"'__dict__' {PRIVATE}"),
    "partial_getattr": ("import functools\nfunctools.partial(getattr, 1)('__dict__')", AttributeError, PRIVATE),
    "reduce_getattr": ("from functools import reduce\nreduce(getattr, ['__class__', '__base__'], 1)", AttributeError, PRIVATE),
    "starmap_getattr": ("import itertools\nlist(itertools.starmap(getattr, [(1, '__dict__')]))", AttributeError, PRIVATE),
    "sorted_key_getattr": ("sorted([1, 2], key=lambda v: getattr(v, '__base__'))", AttributeError, PRIVATE),
    # --- format strings
    "format_attribute": ("'{0.__class__}'.format(1)", ValueError, "format field {0.__class__} is not allowed"),
    "format_index": ("'{0[0]}'.format(['secret'])", ValueError, "format field {0[0]} is not allowed"),
    "format_nested_spec": ("f = lambda: 0\n'{0:{1.__globals__}}'.format(0, f)", ValueError, "format field {1.__globals__} is not allowed"),
    "format_conversion_and_attribute": ("'{0.real!r}'.format(1)", ValueError, "format field {0.real} is not allowed"),
    "format_map_attribute": ("'{x.y}'.format_map({'x': 1})", ValueError, "format field {x.y} is not allowed"),
    "unbound_format": ("str.format('{0.__class__}', 1)", ValueError, "format field {0.__class__} is not allowed"),
    "format_via_getattr": ("getattr('{0.__class__}', 'format')(1)", ValueError, "is not allowed"),
    "format_of_str_subclass": ("class S(str):\n    pass\nS('{0.__class__}').format(1)", ValueError, "is not allowed"),
    "format_keyword_attribute": ("'{k.__class__}'.format(k=1)", ValueError, "format field {k.__class__} is not allowed"),
    # --- AttributeError.obj (CVE-2024-47532)
    "attribute_error_obj": ("import json\ntry:\n    json.codecs\nexcept AttributeError as e:\n    leaked = e.obj", AttributeError, "'obj' of an AttributeError is hidden in the sandbox"),
    "attribute_error_obj_getattr": ("try:\n    data.nope\nexcept AttributeError as e:\n    leaked = getattr(e, 'obj')", AttributeError, "'obj' of an AttributeError is hidden"),
    # --- guard shadowing and reserved names
    "shadow_write_guard": ("_write_ = lambda o: o", ProgramRejected, f"'_write_' {RESERVED}"),
    "shadow_getattr_guard_parameter": ("def f(_getattr_=getattr):\n    return 1", ProgramRejected, f"'_getattr_' {RESERVED}"),
    "shadow_guard_positional_only": ("def f(_write_=lambda o: o, /):\n    pass", ProgramRejected, "positional-only parameters ('/') are not allowed"),
    "shadow_metaclass_hook": ("__metaclass__ = list", ProgramRejected, f"'__metaclass__' {PRIVATE}"),
    "shadow_print_hook": ("_print_ = None", ProgramRejected, RESERVED),
    "shadow_print_collector": ("_print = None", ProgramRejected, f"'_print' {RESERVED}"),
    "shadow_a_temporary": ("_tmp0 = None", ProgramRejected, f"'_tmp0' {RESERVED}"),
    "shadow_via_import_alias": ("from json import loads as _getattr_", ProgramRejected, f"'_getattr_' {RESERVED}"),
    "shadow_by_loop_variable": ("for _getiter_ in [iter]:\n    pass", ProgramRejected, RESERVED),
    "shadow_by_walrus": ("(_getitem_ := None)", ProgramRejected, RESERVED),
    "shadow_by_except_name": ("try:\n    1/0\nexcept Exception as _catchable_:\n    pass", ProgramRejected, RESERVED),
    "shadow_by_with_name": ("class M:\n    def __enter__(self):\n        return 1\n    def __exit__(self, *a):\n        pass\nwith M() as _with_:\n    pass", ProgramRejected, RESERVED),
    "shadow_by_global": ("def f():\n    global _apply_\n    _apply_ = 1", ProgramRejected, RESERVED),
    "shadow_by_function_name": ("def _inplacevar_(op, a, b):\n    return a", ProgramRejected, RESERVED),
    "shadow_by_class_name": ("class _write_:\n    pass", ProgramRejected, RESERVED),
    "printed_variable": ("print(1)\nx = printed", ProgramRejected, "'printed' is not available"),
    # --- syntax the policy does not audit
    "except_star": ("try:\n    pass\nexcept* ValueError:\n    pass", ProgramRejected, "'except*' is not allowed"),
    "match_class_pattern": ("match data:\n    case str(x):\n        pass", ProgramRejected, "'match' statements are not allowed"),
    "async_function": ("async def f():\n    await g()", ProgramRejected, "'async def' is not allowed"),
    # --- writes to values the program does not own
    "data_item_assignment": ("data[0] = 'x'", TypeError, f"cannot assign to an item of a 'tuple' object: only lists, dicts, sets, bytearrays, Counters, defaultdicts, OrderedDicts, deques and the program's own classes and their instances {NOT_CHANGEABLE}"),
    "data_item_deletion": ("del data[0]", TypeError, "cannot delete an item of a 'tuple' object"),
    "data_augmented_item": ("data[0] += 'x'", TypeError, "cannot assign to an item of a 'tuple' object"),
    "data_append": ("data.append('x')", AttributeError, "'tuple' object has no attribute 'append'"),
    "list_append_on_data": ("list.append(data, 'x')", TypeError, "'append' for 'list' objects doesn't apply to a 'tuple' object"),
    "budget_assignment": ("budget.remaining = 10**9", TypeError, "cannot set attribute 'remaining' of a 'FakeBudget' object"),
    "budget_augmented": ("budget.remaining += 10**9", TypeError, "cannot set attribute 'remaining' of a 'FakeBudget' object"),
    "budget_setattr": ("setattr(budget, 'remaining', 5)", TypeError, "cannot set attribute 'remaining'"),
    "budget_delattr": ("delattr(budget, 'remaining')", TypeError, "cannot delete attribute 'remaining'"),
    "module_function_replaced": ("import json\njson.loads = None", TypeError, "cannot set attribute 'loads' of module 'json'"),
    "module_constant_replaced": ("import math\nmath.pi = 3", TypeError, "cannot set attribute 'pi' of module 'math'"),
    "module_setattr": ("import json\nsetattr(json, 'dumps', print)", TypeError, "of module 'json'"),
    "module_attribute_deleted": ("import json\ndel json.dumps", TypeError, "cannot delete attribute 'dumps' of module 'json'"),
    "module_augmented": ("import math\nmath.pi += 1", TypeError, "cannot set attribute 'pi' of module 'math'"),
    "module_class_patched": ("from collections import Counter\nCounter.most_common = None", TypeError, "cannot set attribute 'most_common' of class 'Counter'"),
    "module_function_attribute": ("import json\njson.loads.cache = {}", TypeError, "cannot set attribute 'cache' of a 'function' object"),
    "builtin_type_patched": ("list.append = None", TypeError, "cannot set attribute 'append' of class 'list'"),
    "host_function_patched": ("done.answer = 1", TypeError, "of a 'function' object"),
    # --- BaseException
    "base_exception_class_by_name": ("class Stop(BaseException):\n    pass", NameError, "name 'BaseException' is not defined"),
    "system_exit_by_name": ("raise SystemExit(0)", NameError, "name 'SystemExit' is not defined"),
    "catch_base_exception_obtained_at_run_time": ("kinds = [ValueError]\ntry:\n    1/0\nexcept kinds.pop().mro()[-2]:\n    pass", AttributeError, f"'mro' {HIDDEN}"),
    "catch_non_exception_class": ("try:\n    1/0\nexcept list:\n    pass", TypeError, "'except' can only name Exception and its subclasses in the sandbox, not 'list'"),
    "catch_nested_tuple": ("try:\n    1/0\nexcept (ValueError, (ZeroDivisionError,)):\n    pass", TypeError, "'except' can only name Exception and its subclasses"),
    # --- with
    "with_non_context_manager": ("with data:\n    pass", TypeError, "'tuple' object does not support the context manager protocol"),
}


@pytest.mark.parametrize(("source", "error", "message"), ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused(source: str, error: type[BaseException], message: str) -> None:
    session = Session()
    assert message in refusal(session, source, error)


# The same attacks from inside other scopes and call paths: the guards must not depend on
# being at the top level, or on the call coming straight from program code.
CONTEXTS = {
    "function": "def attack():\n{body}\nattack()",
    "method": "class Attacker:\n    def run(self):\n{body2}\nAttacker().run()",
    "closure": "def outer():\n    def attack():\n{body2}\n    return attack\nouter()()",
    "generator": "def attack():\n{body}\n    yield\nlist(attack())",
    "map_callback": "def attack(_):\n{body}\nlist(map(attack, [1]))",
    "sort_key": "def attack(_):\n{body}\nsorted([1, 2], key=attack)",
    "decorator": "def attack(f):\n{body}\n    return f\n@attack\ndef target():\n    pass",
    "default_argument": "def attack():\n{body}\ndef target(x=attack()):\n    pass",
}


@pytest.mark.parametrize("context", CONTEXTS.values(), ids=CONTEXTS.keys())
@pytest.mark.parametrize(("source", "error", "message"), ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused_in_any_scope(
    source: str, error: type[BaseException], message: str, context: str
) -> None:
    test_attack_is_refused(in_scope(context, source), error, message)


def test_refused_attribute_error_carries_no_object() -> None:
    session = Session()
    with pytest.raises(AttributeError) as info:
        session.run("import json\njson.codecs")
    assert info.value.obj is None
    with pytest.raises(AttributeError) as info:
        session.run("data.nope")
    assert info.value.obj is None


def test_done_passes_through_except_exception() -> None:
    session = Session()
    with pytest.raises(Done) as info:
        session.run("""
            try:
                done({"answer": 42})
            except Exception:
                print("swallowed")
            print("after")
        """)
    assert info.value.value == {"answer": 42}
    assert session.writes == []


def test_done_passes_through_a_clause_naming_its_class() -> None:
    # Even a BaseException class the host hands over cannot catch done() or fail().
    session = Session(Stop=Done)
    with pytest.raises(Done) as info:
        session.run("""
            try:
                fail("no data")
            except (ValueError, Stop):
                print("swallowed")
        """)
    assert info.value.status == "failed"
    assert session.writes == []


def test_done_passes_through_an_error_raised_over_it() -> None:
    session = Session()
    with pytest.raises(ValueError, match="raised over done"):
        session.run("""
            try:
                try:
                    done(1)
                finally:
                    raise ValueError("raised over done")
            except ValueError:
                print("swallowed")
        """)
    assert session.writes == []


def test_catching_a_base_exception_class_refuses_when_an_exception_is_pending() -> None:
    session = Session(Stop=Done)
    with pytest.raises(TypeError, match="not 'Done'"):
        session.run("try:\n    1/0\nexcept Stop:\n    pass\n")


def test_host_base_exception_class_cannot_be_subclassed() -> None:
    session = Session(Stop=Done)
    with pytest.raises(TypeError, match="cannot derive from a BaseException that is not an Exception"):
        session.run("class MyStop(Stop):\n    pass\n")


def test_host_values_survive_attacks_unchanged() -> None:
    loads, dumps, pi = json.loads, json.dumps, math.pi
    session = Session()
    attempts = [
        "data += ('injected',)",
        "data = data + ('more',)",
        "import json\njson.loads = None",
        "import math\nmath.pi = 3",
        "import json\ndel json.dumps",
        "data[0] += 'x'",
        "del data[0]",
    ]
    for source in attempts:
        try:
            session.run(source)
        except (TypeError, AttributeError):
            pass
    assert session.host["data"] == DATA
    assert session["data"] == (*DATA, "injected", "more")  # the program's own new tuple
    assert (json.loads, json.dumps, math.pi) == (loads, dumps, pi)
    out = Session().run("import json, math\nprint(json.loads('[1]'), json.dumps(2), math.pi)")
    assert out == f"[1] 2 {math.pi}\n"


def test_program_objects_stay_writable_but_shared_ones_do_not() -> None:
    out = Session().run(textwrap.dedent("""
        from collections import Counter, OrderedDict, defaultdict, deque
        made = [[], {}, set(), Counter(), defaultdict(int), OrderedDict(), deque()]
        class Mine:
            pass
        m = Mine()
        m.x = 1
        setattr(m, "y", 2)
        del m.x
        refused = []
        for value in (data, (1,), "s", 1, frozenset(), len, Counter):
            try:
                setattr(value, "z", 1)
            except TypeError:
                refused.append(True)
        print(len(made), m.y, len(refused))
    """))
    assert out == "7 2 7\n"
