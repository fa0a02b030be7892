"""The compile policy: which planner programs may run, and how their code is rewritten first.

RestrictedPython rewrites attribute, item, iteration, write and print operations into calls to
hooks (``_getattr_``, ``_write_``, ...) that ``_namespace.build_globals`` supplies, and refuses
names starting with ``_``. This policy changes that, and adds:

* names: ``_helper`` and ``_cache`` are a program's own; dunder names and names of the form
  ``_x_`` (the hooks'), ``_print`` and ``_tmpN`` (RestrictedPython's collector and
  temporaries) are refused in every scope, so nothing a program binds shadows a hook;
* classes: a class body may define the special methods of ``_names.SPECIAL_METHODS``; every
  other dunder is refused with its reason. Attribute reads of ``_x`` and of those special
  methods compile to ``_getattr_``, which allows them only on the program's own objects;
  ``self.__x`` is mangled as Python mangles the store; no dunder may be assigned;
* ``except:`` is ``except _catchable_(None)``, which is ``Exception``; ``except BaseException``
  (or ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, alone or in a tuple) is refused,
  and every clause goes through ``_catchable_``, so ``done()``/``fail()``, which raise a
  ``BaseException``, pass every handler;
* refuses ``return``, ``break``, ``continue`` and ``yield`` inside ``finally``: each would
  silently swallow ``done()`` on its way out;
* wraps the context manager of every ``with`` item in ``_with_``, whose ``__exit__`` cannot
  swallow ``done()``/``fail()`` either;
* binds the right side of a chained assignment (``r = a, b = f()``) to a temporary once,
  where RestrictedPython evaluated it once per target;
* rewrites ``counts[k] += 1`` and ``self.n += 1`` (RestrictedPython refuses them) so that
  target and key are evaluated once, the read goes through ``_getitem_``/``_getattr_`` and the
  write through ``_write_``;
* accepts ``from __future__ import annotations`` (and the other no-op features) at the top of
  a program, as the directive it is, and drops it;
* refuses positional-only parameters and reading ``printed``; allows ``nonlocal`` and
  annotated assignments, with the usual name checks.

Syntax RestrictedPython does not know stays refused (``match``, ``except*``, ``async``).
Annotations are never evaluated: RestrictedPython's ``compile`` call inherits
``from __future__ import annotations``, and the unrestricted mode does the same.

``_compile.compile_program`` compiles every program with :class:`ProgramPolicy`, and lists the
problems it reports in one rejection.

It runs past 400 lines on purpose: one transformer, so every rewrite reads in one file.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable
from typing import TypeAlias

from RestrictedPython.transformer import (
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from . import _names

__all__ = ["Problem", "ProgramPolicy"]

# What a NodeTransformer's visit_* may return: a node, nodes to splice in, or None to drop it.
_Visited: TypeAlias = ast.AST | Iterable[ast.AST] | None

# Never allowed in an except clause: catching them would also catch done() and fail().
_UNCATCHABLE = frozenset(
    {"BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseExceptionGroup"}
)
_CATCH_ALL = (
    "is not allowed: it would also catch done() and fail(), which end the program. "
    "Write 'except Exception:'."
)
_NOT_ALLOWED = {
    "Match": "'match' statements are not allowed in the sandbox; use if/elif",
    "TryStar": "'except*' is not allowed in the sandbox; use 'except'",
    "AsyncFunctionDef": "'async def' is not allowed in the sandbox; use pmap() or pcalls() "
    "to run calls concurrently",
    "Await": "'await' is not allowed in the sandbox; use pmap() or pcalls()",
    "AsyncFor": "'async for' is not allowed in the sandbox; use a plain 'for'",
    "AsyncWith": "'async with' is not allowed in the sandbox",
}


_FUTURE_FEATURES = frozenset(
    {"annotations", "generator_stop", "division", "absolute_import", "print_function",
     "unicode_literals", "with_statement", "generators", "nested_scopes"}
)


class Problem(str):
    """A policy error: a str, as RestrictedPython expects, that also carries its line."""

    line: int | None

    def __new__(cls, line: int | None, info: str) -> Problem:
        self = super().__new__(cls, info)
        self.line = line
        return self


def _hook(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


def _load(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


class ProgramPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer, made stricter and able to rewrite ``x[k] += v``."""

    def error(self, node: ast.AST, info: str) -> None:
        self.errors.append(Problem(getattr(node, "lineno", None), info))

    def not_allowed(self, node: ast.AST) -> None:
        kind = type(node).__name__
        self.error(node, _NOT_ALLOWED.get(kind, f"{kind} is not allowed in the sandbox"))

    def check_name(
        self, node: ast.AST, name: str | None, allow_magic_methods: bool = False
    ) -> None:
        if name is None:
            return
        # RestrictedPython asks with allow_magic_methods only for a def's own name.
        if allow_magic_methods and id(node) in self._methods():
            problem = _names.method_problem(name)
        elif allow_magic_methods and _names.is_dunder(name) and name in _names.SPECIAL_METHODS:
            problem = f"special method {name!r} can only be defined in a class body"
        elif self._scopes()[-1:] == ["class"]:
            # A class body's own names are its attributes: `__str__ = __repr__`,
            # `__hash__ = None`, `_registry = {}`, as a def there may be named.
            problem = _names.method_problem(name)
        else:
            problem = _names.name_problem(name)
        if problem:
            self.error(node, problem)

    def _methods(self) -> set[int]:
        """The ids of the defs written directly in a class body."""
        return self.__dict__.setdefault("_method_ids", set())  # type: ignore[no-any-return]

    def _scopes(self) -> list[str]:
        """``"class"`` or ``"function"`` for each scope being visited, innermost last."""
        return self.__dict__.setdefault("_scope_kinds", [])  # type: ignore[no-any-return]

    def _classes(self) -> list[str]:
        """The names of the class bodies being visited, innermost last (for name mangling)."""
        return self.__dict__.setdefault("_class_names", [])  # type: ignore[no-any-return]

    def visit_ClassDef(self, node: ast.ClassDef) -> _Visited:
        self._methods().update(id(s) for s in node.body if isinstance(s, ast.FunctionDef))
        self._classes().append(node.name)
        self._scopes().append("class")
        try:
            return super().visit_ClassDef(node)
        finally:
            self._scopes().pop()
            self._classes().pop()

    def visit_Lambda(self, node: ast.Lambda) -> _Visited:
        self._scopes().append("function")
        try:
            return super().visit_Lambda(node)
        finally:
            self._scopes().pop()

    def visit_Module(self, node: ast.Module) -> _Visited:
        # Future imports count only at the top, after the docstring, as Python requires.
        leading = self.__dict__.setdefault("_leading_futures", set())
        body = node.body
        start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(
            body[0].value, ast.Constant) and isinstance(body[0].value.value, str) else 0
        for statement in body[start:]:
            if not (isinstance(statement, ast.ImportFrom) and statement.module == "__future__"):
                break
            leading.add(id(statement))
        return super().visit_Module(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> _Visited:
        """``from __future__ import annotations`` is a directive, not an import: it is checked
        and dropped (annotations are never evaluated in the sandbox anyway)."""
        if node.module != "__future__" or node.level:
            return super().visit_ImportFrom(node)
        if id(node) not in self.__dict__.get("_leading_futures", ()):
            self.error(node, "from __future__ imports must occur at the beginning of the program")
        for alias in node.names:
            if alias.name not in _FUTURE_FEATURES:
                self.error(node, f"future feature {alias.name} is not defined")
        directive = ast.Pass()
        copy_locations(directive, node)
        return directive

    def check_function_argument_names(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    ) -> None:
        # Positional-only parameters once skipped the name check (CVE-2026-55830); planners
        # have no need for them, so they are refused outright.
        if node.args.posonlyargs:
            self.error(node, "positional-only parameters ('/') are not allowed in the sandbox; "
                             "remove the '/'")
        super().check_function_argument_names(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        # Defaults and decorators run where the function is defined, so a ``print`` among them
        # belongs to the enclosing scope's collector, not to the function's own.
        defaults, kw_defaults, decorators = node.args.defaults, node.args.kw_defaults, node.decorator_list
        returns, node.returns = node.returns, None
        node.args.defaults, node.decorator_list = [], []
        node.args.kw_defaults = [None] * len(kw_defaults)  # stays aligned with kwonlyargs
        self._scopes().append("function")
        try:
            visited = super().visit_FunctionDef(node)
        finally:
            self._scopes().pop()
        assert isinstance(visited, ast.FunctionDef)  # RestrictedPython keeps the def
        node = visited
        node.args.defaults = [self.visit(d) for d in defaults]
        node.args.kw_defaults = [None if d is None else self.visit(d) for d in kw_defaults]
        node.decorator_list = [self.visit(d) for d in decorators]
        node.returns = self._kept_annotation(returns)
        return node

    def _kept_annotation(self, annotation: ast.expr | None) -> ast.expr | None:
        """An annotation is checked as any expression is, and kept as the program wrote it.

        Programs compile with ``from __future__ import annotations``, so an annotation is never
        evaluated, only kept as the text of its expression (``dataclasses.fields(P)[0].type``);
        rewritten, ``List[int]`` would read ``_getitem_(List, int)``.
        """
        if annotation is not None:
            self.visit(copy.deepcopy(annotation))  # for the errors; the rewrite is dropped
        return annotation

    def visit_arg(self, node: ast.arg) -> _Visited:
        annotation, node.annotation = node.annotation, None
        visited = super().visit_arg(node)
        assert isinstance(visited, ast.arg)  # RestrictedPython keeps the parameter
        visited.annotation = self._kept_annotation(annotation)
        return visited

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        """``a.b`` → ``_getattr_(a, 'b')``; ``a.b = v``, ``del a.b`` write via ``_write_(a)``."""
        problem = _names.attribute_problem(node.attr, store=not isinstance(node.ctx, ast.Load))
        if problem:
            self.error(node, problem)
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            name = _names.mangle(node.attr, self._classes())
            call = _hook("_getattr_", node.value, ast.Constant(name))
            copy_locations(call, node)
            return call
        node.value = _hook("_write_", node.value)
        copy_locations(node.value, node)
        return node

    def visit_Name(self, node: ast.Name) -> _Visited:
        if node.id == "printed" and isinstance(node.ctx, ast.Load):
            self.error(node, "'printed' is not available in the sandbox; print() writes to the "
                             "output")
            return node
        if node.id == "__name__" and isinstance(node.ctx, ast.Load):
            # `if __name__ == "__main__":` reads the program's own "__main__"; binding it
            # stays refused, as every dunder does.
            return node
        return super().visit_Name(node)

    def visit_Call(self, node: ast.Call) -> _Visited:
        for keyword in node.keywords:
            problem = None if keyword.arg is None else _names.name_problem(keyword.arg)
            if problem:
                self.error(node, f"keyword argument {problem}")
        return super().visit_Call(node)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> ast.AST:
        for name in node.names:
            self.check_name(node, name)
        return node

    visit_Nonlocal = visit_Global

    def visit_Assign(self, node: ast.Assign) -> _Visited:
        """Evaluate the right side once, then assign it to each target, left to right.

        RestrictedPython copies the value into one assignment per target, so
        ``r = a, b = tool.pair(3)`` called the tool twice and ``t = a, b = b, a`` read ``b, a``
        again after ``a`` and ``b`` had changed. With several targets it becomes::

            _tmp0 = tool.pair(3)
            try:
                r = _tmp0
                a, b = _unpack_sequence_(_tmp0, ...)
            finally:
                del _tmp0
        """
        if len(node.targets) == 1:
            return super().visit_Assign(node)
        targets = [self.visit(target) for target in node.targets]
        value = self.visit(node.value)
        tmp = self.gen_tmp_name()
        assigns: list[ast.stmt] = []
        for target in targets:
            copy: ast.expr = _load(tmp)
            if isinstance(target, (ast.Tuple, ast.List)):
                copy = self.protect_unpack_sequence(target, copy)  # type: ignore[arg-type]
            assigns.append(ast.Assign(targets=[target], value=copy))
        bind = ast.Assign(targets=[ast.Name(tmp, ast.Store())], value=value)
        write = ast.Try(
            body=assigns,
            handlers=[],
            orelse=[],
            finalbody=[ast.Delete(targets=[ast.Name(tmp, ast.Del())])],
        )
        for statement in (bind, write, *assigns):
            copy_locations(statement, node)
        return [bind, write]

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        """``x: int = 1``: target and value are checked as in an assignment; the annotation is
        kept as written (see :meth:`_kept_annotation`)."""
        annotation, node.annotation = node.annotation, ast.Constant(None)
        visited = self.node_contents_visit(node)
        assert isinstance(visited, ast.AnnAssign)
        visited.annotation = self._kept_annotation(annotation)  # type: ignore[assignment]
        return visited

    def visit_Try(self, node: ast.Try) -> ast.AST:
        reported = self.__dict__.setdefault("_reported_escapes", set())
        for escape, what in _escapes(node.finalbody):
            if escape not in reported:  # else reported for an enclosing finally already
                reported.add(escape)
                self.error(escape, f"'{what}' inside 'finally' is not allowed: it would swallow "
                           "the exception being raised, including done() and fail(). Move it "
                           "after the try statement.")
        return self.node_contents_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        """Refuse catch-alls; route the clause's classes through ``_catchable_`` at run time."""
        for name in _caught_names(node.type):
            if name in _UNCATCHABLE:
                self.error(node, f"'except {name}' {_CATCH_ALL}")
        visited = super().visit_ExceptHandler(node)
        assert isinstance(visited, ast.ExceptHandler)  # RestrictedPython keeps the handler
        node = visited
        # A bare ``except:`` is ``except Exception:``, the most a program may catch:
        # ``_catchable_(None)`` is Exception, or nothing while done()/fail() is on its way out.
        node.type = _hook("_catchable_", ast.Constant(None) if node.type is None else node.type)
        copy_locations(node.type, node)
        return node

    def visit_With(self, node: ast.With) -> ast.AST:
        """``with m as x:`` → ``with _with_(m) as x:``, for every item."""
        visited = super().visit_With(node)
        assert isinstance(visited, ast.With)  # RestrictedPython keeps the statement
        for item in visited.items:
            item.context_expr = _hook("_with_", item.context_expr)
            copy_locations(item.context_expr, visited)
        return visited

    def visit_AugAssign(self, node: ast.AugAssign) -> _Visited:
        """Rewrite ``t.a op= v`` and ``t[k] op= v``; plain names stay with RestrictedPython.

        ``d[k()] += v()`` becomes, with fresh temporaries::

            _tmp0, _tmp1 = d, k()
            try:
                _write_(_tmp0)[_tmp1] = _inplacevar_('+=', _getitem_(_tmp0, _tmp1), v())
            finally:
                del _tmp0, _tmp1

        which evaluates in CPython's order, each part once.
        """
        target = node.target
        if isinstance(target, ast.Name):
            return super().visit_AugAssign(node)
        obj = self.gen_tmp_name()
        if isinstance(target, ast.Attribute):
            problem = _names.attribute_problem(target.attr, store=True)
            if problem:
                self.error(node, problem)
            parts = [(obj, self.visit(target.value))]
            name = _names.mangle(target.attr, self._classes())  # the store below is mangled by Python
            read: ast.expr = _hook("_getattr_", _load(obj), ast.Constant(name))
            store: ast.expr = ast.Attribute(_hook("_write_", _load(obj)), target.attr, ast.Store())
        else:
            assert isinstance(target, ast.Subscript)
            key = self.gen_tmp_name()  # a slice key compiles to a slice() object here too
            parts = [(obj, self.visit(target.value)), (key, self.visit(target.slice))]
            read = _hook("_getitem_", _load(obj), _load(key))
            store = ast.Subscript(_hook("_write_", _load(obj)), _load(key), ast.Store())
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = _hook("_inplacevar_", op, read, self.visit(node.value))
        bind = ast.Assign(
            targets=[ast.Tuple([ast.Name(n, ast.Store()) for n, _ in parts], ast.Store())],
            value=ast.Tuple([expr for _, expr in parts], ast.Load()),
        )
        write = ast.Try(
            body=[ast.Assign(targets=[store], value=value)],
            handlers=[],
            orelse=[],
            finalbody=[ast.Delete(targets=[ast.Name(n, ast.Del()) for n, _ in parts])],
        )
        copy_locations(bind, node)
        copy_locations(write, node)
        return [bind, write]


def _caught_names(expr: ast.expr | None) -> list[str]:
    """Names listed literally in an except clause: ``E`` or ``(A, (B, C))``."""
    if isinstance(expr, ast.Name):
        return [expr.id]
    if isinstance(expr, ast.Tuple):
        return [name for element in expr.elts for name in _caught_names(element)]
    return []


def _escapes(statements: list[ast.stmt]) -> list[tuple[ast.AST, str]]:
    """The statements in a finally block that would leave it while an exception is pending.

    ``return``, ``yield`` and ``await`` anywhere in the block's own scope, and ``break`` or
    ``continue`` that are not inside a loop of their own within the block.
    """
    found: list[tuple[ast.AST, str]] = []

    def walk(node: ast.AST, in_loop: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            # A new scope: its body's return/yield stay in it, but its decorators, defaults
            # and bases are evaluated here.
            for part in _evaluated_outside(node):
                walk(part, in_loop)
            return
        if isinstance(node, ast.Return):
            found.append((node, "return"))
        elif isinstance(node, (ast.Yield, ast.YieldFrom)):
            found.append((node, "yield"))
        elif isinstance(node, ast.Await):
            found.append((node, "await"))
        elif isinstance(node, (ast.Break, ast.Continue)) and not in_loop:
            found.append((node, "break" if isinstance(node, ast.Break) else "continue"))
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            heads = [node.test] if isinstance(node, ast.While) else [node.target, node.iter]
            for head in heads:
                walk(head, in_loop)
            for statement in node.orelse:  # a loop's else belongs to the enclosing loop
                walk(statement, in_loop)
            for statement in node.body:
                walk(statement, True)
            return
        for child in ast.iter_child_nodes(node):
            walk(child, in_loop)

    for statement in statements:
        walk(statement, False)
    return found


def _evaluated_outside(node: ast.AST) -> list[ast.expr]:
    """The parts of a def, lambda or class statement evaluated in the enclosing scope."""
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    outside = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    if not isinstance(node, ast.Lambda):
        outside.extend(node.decorator_list)
    return outside
