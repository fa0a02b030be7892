"""The compile policy: which programs compile, and how a rejection reads."""

from __future__ import annotations

import dis
import textwrap
import types

import pytest

from ptcrun.sandbox.child import _compile
from ptcrun.sandbox.child._compile import (
    MAX_SOURCE_CHARS,
    MAX_SOURCE_LINES,
    ProgramRejected,
    compile_program,
)
from tests.sandbox.inproc import run


def rejected(source: str, *, restricted: bool = True) -> ProgramRejected:
    with pytest.raises(ProgramRejected) as info:
        compile_program(textwrap.dedent(source), restricted=restricted)
    return info.value


def test_compiles_a_program_to_code() -> None:
    code = compile_program("x = 1\nprint(x)\n")
    assert isinstance(code, types.CodeType)
    assert code.co_filename == "<program>"


def test_program_of_exactly_the_size_limits_compiles() -> None:
    compile_program("#" * MAX_SOURCE_CHARS)
    compile_program("\n" * (MAX_SOURCE_LINES - 1) + "x = 1")


def test_rejects_program_longer_than_max_source_chars() -> None:
    exc = rejected("#" * (MAX_SOURCE_CHARS + 1))
    assert exc.kind == "TooLarge"
    assert exc.message.startswith(f"the program is {MAX_SOURCE_CHARS + 1:,} characters long; "
                                  f"at most {MAX_SOURCE_CHARS:,} are allowed.")
    assert exc.line is None


def test_rejects_program_with_more_than_max_source_lines_in_both_modes() -> None:
    source = "x = 1\n" * (MAX_SOURCE_LINES + 1)
    for restricted in (True, False):
        exc = rejected(source, restricted=restricted)
        assert exc.kind == "TooLarge"
        assert f"has {MAX_SOURCE_LINES + 1:,} lines; at most {MAX_SOURCE_LINES:,}" in exc.message


def test_rejects_nul_character_with_its_line() -> None:
    exc = rejected("x = 1\ny = 'a\0b'\n")
    assert (exc.kind, exc.line) == ("SyntaxError", 2)
    assert exc.message == "the program contains a NUL character; remove it"
    assert exc.source_line == "y = 'a\\0b'"


def test_syntax_error_names_line_and_source_line() -> None:
    exc = rejected("x = 1\nif x\n    y = (1 2)\n")
    assert exc.kind == "SyntaxError"
    assert exc.line == 2
    assert exc.source_line == "if x"
    assert exc.message == "expected ':'"
    assert str(exc) == "line 2: expected ':'\n    if x"


def test_indentation_error_keeps_its_kind() -> None:
    exc = rejected("def f():\nreturn 1\n")
    assert (exc.kind, exc.line) == ("IndentationError", 2)


def test_syntax_error_found_by_the_compiler_stage_has_a_line() -> None:
    exc = rejected("x = 1\nreturn x\n")
    assert (exc.kind, exc.line, exc.message) == ("SyntaxError", 2, "'return' outside function")


def test_deeply_nested_program_is_rejected_not_crashed() -> None:
    exc = rejected("x = " + " + ".join(["1"] * 3000))
    assert exc.kind == "TooDeep"
    assert "nested too deeply" in exc.message


def test_memory_error_while_compiling_is_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(_compile, "compile_restricted_exec", exhausted)
    assert rejected("x = 1").kind == "TooDeep"


def test_invalid_escape_sequences_compile_without_warnings() -> None:
    # pytest turns warnings into errors here, so a DeprecationWarning would fail this test
    for restricted in (True, False):
        compile_program('import re\npattern = re.compile("\\d+\\s")\n', restricted=restricted)


def test_long_source_line_is_cut_in_the_rejection() -> None:
    exc = rejected("x = (" + "1, " * 200 + "2 3)")
    assert exc.source_line is not None and len(exc.source_line) == 200
    assert exc.source_line.endswith("…")


REFUSED = {
    "dunder_name": ("__secret__ = 1", 1, "'__secret__' is not allowed: names starting with '_' are private in the sandbox"),
    "hook_like_name": ("_secret_ = 1", 1, "'_secret_' is not allowed: names of the form '_x_' are reserved for the sandbox"),
    "dunder_attribute": ("x = ().__base__", 1, "'__base__' is not allowed: names starting with '_' are private"),
    "dunder_store": ("x.__class__ = int", 1, "'__class__' cannot be assigned in the sandbox"),
    "special_method_store": ("A.__eq__ = f", 1, "'__eq__' cannot be assigned"),
    "frame_attribute": ("def g():\n    yield 1\nf = g().gi_frame", 3, "'gi_frame' is not allowed: frame and code objects are hidden"),
    "code_attribute": ("c = f.co_code", 1, "'co_code' is not allowed"),
    "traceback_attribute": ("t = e.tb_frame", 1, "'tb_frame' is not allowed"),
    "except_base_exception": ("try:\n    pass\nexcept BaseException:\n    pass", 3, "'except BaseException' is not allowed"),
    "except_tuple_with_system_exit": ("try:\n    pass\nexcept (ValueError, (SystemExit,)) as e:\n    pass", 3, "'except SystemExit' is not allowed"),
    "except_keyboard_interrupt": ("try:\n    pass\nexcept KeyboardInterrupt:\n    pass", 3, "'except KeyboardInterrupt' is not allowed"),
    "except_generator_exit": ("try:\n    pass\nexcept GeneratorExit:\n    pass", 3, "'except GeneratorExit' is not allowed"),
    "except_star": ("try:\n    pass\nexcept* ValueError:\n    pass", 1, "'except*' is not allowed in the sandbox"),
    "match": ("match x:\n    case 1:\n        pass", 1, "'match' statements are not allowed in the sandbox"),
    "async_def": ("async def f():\n    pass", 1, "'async def' is not allowed in the sandbox"),
    "return_in_finally": ("def f():\n    try:\n        pass\n    finally:\n        return 1", 5, "'return' inside 'finally' is not allowed: it would swallow"),
    "break_in_finally": ("for i in x:\n    try:\n        pass\n    finally:\n        break", 5, "'break' inside 'finally' is not allowed"),
    "continue_in_finally": ("while x:\n    try:\n        pass\n    finally:\n        continue", 5, "'continue' inside 'finally' is not allowed"),
    "yield_in_finally": ("def g():\n    try:\n        pass\n    finally:\n        yield 1", 5, "'yield' inside 'finally' is not allowed"),
    "break_in_loop_else_in_finally": ("for i in x:\n    try:\n        pass\n    finally:\n        for j in y:\n            pass\n        else:\n            break", 8, "'break' inside 'finally'"),
    "positional_only_parameters": ("def f(a, /):\n    pass", 1, "positional-only parameters ('/') are not allowed in the sandbox"),
    "guard_named_positional_only_parameter": ("def f(_write_=None, /):\n    pass", 1, "'_write_' is not allowed"),
    "positional_only_lambda": ("f = lambda a, /: a", 1, "positional-only parameters"),
    "hook_like_keyword_argument": ("f(_x_=1)", 1, "keyword argument '_x_' is not allowed"),
    "printed": ("x = printed", 1, "'printed' is not available in the sandbox"),
    "print_as_target": ("print = 1", 1, "'print' is a reserved name in the sandbox"),
    "metaclass_keyword": ("class A(metaclass=M):\n    pass", 1, 'The keyword argument "metaclass" is not allowed'),
    "dunder_method_outside_allowlist": ("class A:\n    def __getattr__(self, n):\n        pass", 2, "'__getattr__' is not allowed"),
    "shadowing_a_hook": ("_getattr_ = getattr", 1, "'_getattr_' is not allowed"),
    "global_of_a_hook": ("def f():\n    global _write_", 2, "'_write_' is not allowed"),
    "nonlocal_hook_like": ("def f():\n    _a_ = 1\n    def g():\n        nonlocal _a_", 2, "'_a_' is not allowed"),
    "hook_like_import_alias": ("import json as _j_", 1, "'_j_' is not allowed"),
    "exec_call": ("exec('1')", 1, "Exec calls are not allowed."),
    "eval_call": ("eval('1')", 1, "Eval calls are not allowed."),
    "star_import": ("from json import *", 1, '"*" imports are not allowed.'),
    "augmented_private_attribute": ("x.__dict__ += 1", 1, "'__dict__' cannot be assigned"),
}


@pytest.mark.parametrize(("source", "line", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_policy_refuses(source: str, line: int, message: str) -> None:
    exc = rejected(source)
    assert exc.kind == "NotAllowed"
    assert exc.line == line
    assert message in exc.message


def test_rejection_lists_every_problem_with_its_line() -> None:
    exc = rejected("a = x.__base__\nb = 2\ntry:\n    pass\nexcept BaseException:\n    pass\n")
    assert exc.line == 1
    assert exc.source_line == "a = x.__base__"
    assert exc.message.splitlines() == [
        "line 1: '__base__' is not allowed: names starting with '_' are private in the sandbox",
        (
            "line 5: 'except BaseException' is not allowed: it would also catch done() and fail(), "
            "which end the program. Write 'except Exception:'."
        ),
    ]


ALLOWED = {
    "except_exception": "try:\n    pass\nexcept Exception as e:\n    pass",
    "except_tuple": "try:\n    pass\nexcept (ValueError, KeyError):\n    pass\nfinally:\n    x = 1",
    "loop_inside_finally": "try:\n    pass\nfinally:\n    for i in range(2):\n        if i:\n            break\n        continue",
    "function_inside_finally": "try:\n    pass\nfinally:\n    def f():\n        return 1\n    g = lambda: (yield)",
    "return_in_try_body": "def f():\n    try:\n        return 1\n    finally:\n        pass",
    "nonlocal": "def f():\n    n = 0\n    def g():\n        nonlocal n\n        n += 1\n    g()\n    return n",
    "annotated_assignment": "x: int = 1\ny: list[str]\nclass A:\n    z: int = 2",
    "walrus": "if (n := 3) > 2:\n    pass",
    "allowed_dunder_methods": "class A:\n    def __init__(self):\n        pass\n    def __eq__(self, o):\n        return True",
    "single_underscore": "for _ in range(3):\n    pass",
    "private_helpers": "_cache = {}\ndef _helper(_x, *, _y=1):\n    return _x\nimport json as _j\n_helper(1, _y=2)",
}


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_policy_allows(source: str) -> None:
    compile_program(source)


def test_every_except_clause_goes_through_the_catchable_hook() -> None:
    code = compile_program("try:\n    pass\nexcept ValueError:\n    pass\n")
    loaded = [i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_NAME"]
    assert "_catchable_" in loaded


def test_unrestricted_mode_compiles_what_the_policy_refuses() -> None:
    code = compile_program("try:\n    x = ().__class__\nexcept:\n    pass\n", restricted=False)
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["x"] is tuple


def test_annotations_are_not_evaluated_in_either_mode() -> None:
    source = "def f(x: undefined_name) -> also_undefined:\n    return x\nresult = f(2)\n"
    namespace: dict[str, object] = {}
    exec(compile_program(source, restricted=False), namespace)
    assert namespace["result"] == 2
    assert run(source + "print(result)") == "2\n"


def test_rejects_source_that_is_not_text() -> None:
    with pytest.raises(TypeError, match="source must be a str, not bytes"):
        compile_program(b"x = 1")  # type: ignore[arg-type]


def test_print_passed_as_a_default_argument_works():
    from ptcrun.sandbox import execute

    assert execute("def f(p=print):\n    p(2)\nf()").output == "2\n"
    assert execute("def g(*, q=print, n=3):\n    q(n)\ng()").output == "3\n"


def test_defaults_and_keyword_only_names_are_still_checked():
    from ptcrun.sandbox import execute

    assert execute("def k(*, _x_=1):\n    return 1").error.kind == "NotAllowed"
    assert execute("def k(a=().__base__):\n    return 1").error.kind == "NotAllowed"
