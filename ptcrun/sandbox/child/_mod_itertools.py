"""``itertools`` for programs: the iterators that let go of their input take one caller at a time.

In CPython 3.11, ``chain.from_iterable``, ``islice`` and ``pairwise`` drop their reference to
their input when it raises. Shared by pmap items (threads), an iterator over a program's
generator is asked for its next value by a second item while the first is still running the
generator: the generator raises "already executing" to the second, the iterator lets go of it,
and it is freed under the first, which then runs freed memory (the child died with SIGSEGV).
``pairwise`` also frees the value it holds back while the first item still uses it, so keeping
the input alive is not enough.

Here these classes are subclasses whose ``__next__`` runs the real one only when no other call
of the same iterator is under way, in any thread or further up the same one; otherwise it raises
``ValueError``, as a generator does. The other served iterators keep their input to the end
(checked one by one; docs/security.md, "Crashes that remain possible"), and ``tee`` guards
itself ("cannot re-enter the tee iterator"). The subclasses keep their class's name, module
and behaviour; their one slot has a dunder name, so a program can neither read nor replace it.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

__all__ = ["MEMBERS"]


def _one_at_a_time(base: type) -> type:
    name = f"itertools.{base.__name__}"
    real_next = base.__next__  # type: ignore[attr-defined]

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        self = base.__new__(cls, *args, **kwargs)
        self.__running__ = threading.Lock()
        return self

    def __next__(self: Any) -> Any:
        running = self.__running__
        if not running.acquire(False):  # never waits: a second caller is refused
            raise ValueError(
                f"{name} iterator already executing: another pmap item (or this one, further "
                "up) is taking its next value; give each item its own iterator, or share a list"
            )
        try:
            return real_next(self)
        finally:
            running.release()

    namespace: dict[str, Any] = {
        # A dunder name: a program can neither read nor write it (``self.__x__ = v`` and
        # ``setattr`` with a dunder are refused, on its own subclass's instances too) nor define
        # it in a class body, so no subclass swaps the lock for one that lets every caller in.
        "__slots__": ("__running__",),
        "__new__": __new__,
        "__next__": __next__,
        "__module__": "itertools",
        "__qualname__": base.__name__,
        "__doc__": base.__doc__,
    }
    if base is itertools.chain:
        from_iterable = vars(base)["from_iterable"]  # C builds the object past __new__

        def chain_from_iterable(cls: type, iterable: Any) -> Any:
            self = from_iterable.__get__(None, cls)(iterable)
            self.__running__ = threading.Lock()
            return self

        chain_from_iterable.__name__ = chain_from_iterable.__qualname__ = "from_iterable"
        chain_from_iterable.__doc__ = from_iterable.__doc__
        namespace["from_iterable"] = classmethod(chain_from_iterable)
    return type(base.__name__, (base,), namespace)


MEMBERS: dict[str, object] = {
    kind.__name__: _one_at_a_time(kind)
    for kind in (itertools.chain, itertools.islice, itertools.pairwise)
}
