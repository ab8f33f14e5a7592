"""Our records behave as typing.NamedTuple's, class for class."""

from __future__ import annotations

import typing

import pytest

from send_metrics.lean import records
from send_metrics.settings.destination import Target


def _pair(base: type) -> type:
    class Point(base):  # type: ignore[misc, valid-type]
        """A point."""

        x: int
        y: int = 2
        label: str = "p"

        @property
        def total(self) -> int:
            return self.x + self.y

        def moved(self, by: int) -> Point:
            return self._replace(x=self.x + by)

    return Point


OURS, THEIRS = _pair(records.NamedTuple), _pair(typing.NamedTuple)


@pytest.mark.parametrize(
    "make",
    [
        lambda c: c(1),
        lambda c: c(1, 5),
        lambda c: c(x=3, label="q"),
        lambda c: c(1, 2, "z").moved(4),
        lambda c: c(7)._replace(y=0),
    ],
)
def test_a_record_is_what_typing_makes(make: typing.Callable[[type], typing.Any]) -> None:
    ours, theirs = make(OURS), make(THEIRS)
    assert tuple(ours) == tuple(theirs) and ours == theirs and hash(ours) == hash(theirs)
    assert repr(ours) == repr(theirs) and ours._asdict() == theirs._asdict()
    assert ours.total == theirs.total and ours[0] == theirs[0]
    assert (OURS._fields, OURS._field_defaults) == (THEIRS._fields, THEIRS._field_defaults)
    assert OURS.__doc__ == THEIRS.__doc__ and isinstance(ours, tuple)


@pytest.mark.parametrize(
    "call", [lambda c: c(), lambda c: c(1, 2, "z", 4), lambda c: c(1, z=3), lambda c: c(1, x=2)]
)
def test_bad_arguments_are_refused_as_typing_refuses_them(
    call: typing.Callable[[type], typing.Any],
) -> None:
    for cls in (OURS, THEIRS):
        with pytest.raises(TypeError):
            call(cls)


def test_a_records_own_repr_is_kept_so_secrets_stay_hidden() -> None:
    target = Target("http", "http://127.0.0.1:9/", headers={"Authorization": "Bearer S3CRET"})
    assert "S3CRET" not in repr(target) and "S3CRET" not in str(target)
