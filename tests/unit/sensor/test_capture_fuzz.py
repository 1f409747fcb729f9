"""Property tests: any nesting of builtins and hostile objects encodes to bounded, valid JSON."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.capture import capture_frame, encode
from sensor.probes import CaptureLimits

RAN: list[str] = []

try:
    from sensor.redaction import Redactor

    REDACTOR: Any = Redactor()
except ImportError:  # the redaction module is another stream's; run without it if absent
    REDACTOR = None


class Hostile:
    """Every protocol hook records that it ran."""

    def __init__(self, payload: object) -> None:
        object.__setattr__(self, "payload", payload)

    def __getattribute__(self, name: str) -> Any:
        RAN.append(name)
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        RAN.append("__repr__")
        return "H"

    def __eq__(self, other: object) -> bool:
        RAN.append("__eq__")
        return False

    def __hash__(self) -> int:
        RAN.append("__hash__")
        return 0

    def __len__(self) -> int:
        RAN.append("__len__")
        return 0


class HostileList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        RAN.append("__iter__")
        return iter([])


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=300),
    st.binary(max_size=50),
    st.decimals(allow_nan=False),
    st.datetimes(),
    st.uuids(),
)


def extend(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=8),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=10), children, max_size=6),
        st.dictionaries(st.integers(), children, max_size=3),
        st.frozensets(st.integers(), max_size=5),
        children.map(Hostile),
        st.lists(children, max_size=4).map(HostileList),
    )


values = st.recursive(scalars, extend, max_leaves=40)
limits = st.builds(
    CaptureLimits,
    max_depth=st.integers(0, 6),
    max_items=st.integers(0, 10),
    max_string=st.integers(0, 50),
    max_fields=st.integers(0, 10),
    max_bytes=st.integers(0, 4000),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values, lim=limits)
def test_any_value_encodes_to_bounded_json_without_user_code(
    value: object, lim: CaptureLimits
) -> None:
    RAN.clear()
    out = encode(value, lim, redactor=None)
    assert RAN == []
    if REDACTOR is not None:
        json.dumps(encode(value, lim, redactor=REDACTOR), allow_nan=False)
        assert RAN == []
    text = json.dumps(out, allow_nan=False)
    # Approximate accounting: the budget plus one cut value and its markers.
    assert len(text) <= 2 * lim.max_bytes + 4 * lim.max_string + 600


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=30), lim=limits)
def test_any_frame_captures_without_raising(frame: dict[str, object], lim: CaptureLimits) -> None:
    RAN.clear()
    captures, truncated, errors = capture_frame(frame, lim, None)
    assert RAN == []
    json.dumps(captures, allow_nan=False)
    assert len(captures) <= lim.max_fields
    assert isinstance(truncated, bool)
    assert all(isinstance(e, str) for e in errors)
