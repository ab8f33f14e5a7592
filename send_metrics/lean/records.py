"""`typing.NamedTuple` and `TypedDict` class syntax for our records, without importing `typing`.

Every wrapped run builds a few records (`Settings`, `Decision`, the facts, the event's
identity) after its child starts, and `import typing` alone costs about 5 ms there, a third of
the interpreter's own start. Type checkers see `typing.NamedTuple` itself; at run time a small
class builder makes the same kind of class: a tuple subclass with a property per field,
defaults, `_fields`, `_field_defaults`, `_replace`, `_asdict` and a readable `repr`. A
`TypedDict` is a plain `dict` at run time anyway: here it is `dict` itself, its annotations kept.

Replaces `typing.NamedTuple` and `typing.TypedDict`. Saves `import typing`: 9.0 ms against
0.7 ms for this module (`python -X importtime`, docs/design.md "The stand-ins"). Held equal by
`tests/test_records.py`, class for class against `typing.NamedTuple`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
    from typing import TypedDict as TypedDict
else:
    TypedDict = dict

    from _operator import itemgetter  # the C module behind `operator`, loaded with the interpreter

    def _new(cls, *args, **kwargs):
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes at most {len(fields)} arguments")
        if kwargs or len(args) < len(fields):
            values = list(args)
            for name in fields[len(args) :]:
                if name in kwargs:
                    values.append(kwargs.pop(name))
                elif name in cls._field_defaults:
                    values.append(cls._field_defaults[name])
                else:
                    raise TypeError(f"{cls.__name__}() is missing its field {name!r}")
            if kwargs:
                raise TypeError(f"{cls.__name__}() has no field {next(iter(kwargs))!r}")
            args = values
        return tuple.__new__(cls, args)

    def _replace(self, **changes):
        return type(self)(**{**self._asdict(), **changes})

    def _asdict(self):
        return dict(zip(self._fields, self, strict=True))

    def _repr(self):
        inner = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"{type(self).__name__}({inner})"

    def _getnewargs(self):
        return tuple(self)

    class _Builder(type):
        """Turns `class X(NamedTuple): a: int = 0` into a tuple subclass, as typing does."""

        def __new__(mcs, name, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcs, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            body = {
                "__repr__": _repr,
                "__getnewargs__": _getnewargs,
                "_replace": _replace,
                "_asdict": _asdict,
            }  # the class's own methods (a `__repr__` hiding secrets) win over these
            body.update((key, value) for key, value in namespace.items() if key not in fields)
            body.update(
                __slots__=(),
                __new__=_new,
                _fields=fields,
                _field_defaults={key: namespace[key] for key in fields if key in namespace},
            )
            for index, field in enumerate(fields):
                body[field] = property(itemgetter(index), doc=f"Alias for field {index}")
            return type(name, (tuple,), body)

    class NamedTuple(metaclass=_Builder):
        """Base of our records: subclasses are built by `_Builder`."""
