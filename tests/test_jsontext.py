"""Our JSON text is the standard library's, byte for byte, and reads as strictly."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from send_metrics.lean import jsontext

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
SEPARATORS = [(", ", ": "), (",", ":")]


@given(documents)
@pytest.mark.parametrize("separators", SEPARATORS)
@pytest.mark.parametrize("sort_keys", [False, True])
def test_dumps_writes_what_json_writes(
    separators: tuple[str, str], sort_keys: bool, value: Any
) -> None:
    ours = jsontext.dumps(value, separators=separators, sort_keys=sort_keys)
    assert ours == json.dumps(value, separators=separators, sort_keys=sort_keys)


@given(documents)
def test_loads_reads_what_json_reads(value: Any) -> None:
    text = json.dumps(value)
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.loads(f" \n{text}\t ".encode()) == value


def test_tuples_and_non_string_keys_as_json_writes_them() -> None:
    value = {1: (1, 2), None: [], False: {}, 2.5: "é\u2028\x00"}
    assert jsontext.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("text", ["", "  ", "{", "[1,]", "1 2", "{'a': 1}", "tru", "01", '"\x01"'])
def test_loads_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsontext.loads(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, object(), {(1,): 2}])
def test_dumps_refuses_what_no_receiver_reads(value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        jsontext.dumps(value)
