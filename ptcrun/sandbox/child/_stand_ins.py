"""The base of the objects a program gets in place of a class.

``list`` and the other containers (``ContainerType``), ``type`` (``TypeOf``) and the class of an
object whose class a program cannot name (``ClassOf``) are stand-ins, not classes. Code that
must treat them as classes without importing the guards (``copy``, which the guards' modules
import) asks ``isinstance(x, ClassStandIn)``.
"""

from __future__ import annotations

__all__ = ["ClassStandIn", "named_as_classes"]


class ClassStandIn:
    """A stand-in for a class; it holds nothing of its own."""

    __slots__ = ()


def named_as_classes(*stand_ins: type) -> None:
    """Give the stand-ins' own classes the name of the class of a class, ``type``.

    Python's own messages name an object's class (``object of type 'type' has no len()``), so
    a program that misuses ``list`` or ``type(tool)`` reads what it would read of a class, not
    the name of the sandbox's code.
    """
    for cls in stand_ins:
        cls.__name__ = cls.__qualname__ = "type"
