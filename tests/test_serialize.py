from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from pathlib import PurePosixPath
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from trace_telemetry._serialize import CIRCULAR, TOO_DEEP, encode, to_jsonable


def strict_loads(raw: bytes) -> Any:
    """Parse like System.Text.Json: no NaN/Infinity, valid UTF-8, no lone surrogates."""

    def reject(name: str) -> None:
        raise ValueError(f"non-strict literal {name}")

    value = json.loads(raw.decode("utf-8"), parse_constant=reject)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class TestPlainValues:
    def test_plain_json_is_encoded_compactly_and_unchanged(self) -> None:
        value = {"order_id": "123", "amount": 99.9, "ok": True, "items": [1, 2], "none": None}
        assert value == strict_loads(encode(value))
        assert b'{"order_id":"123","amount":99.9' in encode(value)

    def test_non_ascii_text_stays_readable(self) -> None:
        assert '"ação"'.encode() == encode("ação")


class TestHostileValues:
    def test_nan_and_infinity_become_null(self) -> None:
        assert [None, None, None, 1.5] == strict_loads(encode([math.nan, math.inf, -math.inf, 1.5]))

    def test_circular_structures_become_a_placeholder(self) -> None:
        loop: dict = {"name": "a"}
        loop["self"] = loop
        items: list = [1]
        items.append(items)
        assert {"name": "a", "self": CIRCULAR} == strict_loads(encode(loop))
        assert [1, CIRCULAR] == strict_loads(encode(items))

    def test_shared_but_acyclic_references_are_kept(self) -> None:
        shared = {"k": 1}
        decoded = strict_loads(encode({"a": shared, "b": shared, "c": math.nan}))
        assert {"a": {"k": 1}, "b": {"k": 1}, "c": None} == decoded

    def test_two_thousand_levels_of_nesting_are_cut_with_a_marker(self) -> None:
        deep: Any = "bottom"
        for _ in range(2000):
            deep = [deep]
        decoded = strict_loads(encode(deep))
        depth = 0
        while isinstance(decoded, list):
            decoded = decoded[0]
            depth += 1
        assert TOO_DEEP == decoded
        assert depth <= 60

    def test_a_flat_value_with_many_brackets_is_kept_whole(self) -> None:
        value = [{"i": i} for i in range(200)]
        assert value == strict_loads(encode(value))

    def test_an_event_batch_stays_within_the_servers_depth_limit(self) -> None:
        deep: Any = 1
        for _ in range(100):
            deep = {"d": deep}
        event = {"id": "x", "data": deep}
        body = b"[" + encode(event) + b"]"
        depth = best = 0
        for char in body.decode():
            if char in "[{":
                depth += 1
                best = max(best, depth)
            elif char in "]}":
                depth -= 1
        assert best <= 64

    def test_lone_surrogates_become_the_replacement_character(self) -> None:
        assert "a\ufffdb" == strict_loads(encode("a\ud800b"))
        assert {"k\ufffd": "v"} == strict_loads(encode({"k\udfff": "v"}))

    def test_a_valid_surrogate_pair_is_joined(self) -> None:
        assert "\U0001f600" == strict_loads(encode(["\ud83d\ude00", math.nan]))[0]

    def test_bytes_become_text_or_base64(self) -> None:
        assert ["héllo", "base64:/w=="] == strict_loads(encode([b"h\xc3\xa9llo", b"\xff"]))

    def test_rich_types_become_sensible_scalars(self) -> None:
        moment = datetime.datetime(2026, 11, 28, 2, 4, 14, 123456, tzinfo=datetime.timezone.utc)
        value = {
            "when": moment,
            "day": datetime.date(2026, 11, 28),
            "at": datetime.time(2, 4),
            "span": datetime.timedelta(seconds=90),
            "price": decimal.Decimal("99.90"),
            "precise": decimal.Decimal("0.1000000000000000000000001"),
            "bad": decimal.Decimal("NaN"),
            "uid": uuid.UUID(int=1),
            "path": PurePosixPath("/tmp/x"),
            "color": Color.RED,
            "tags": {"b", "a"},
            "frozen": frozenset({3}),
            "pair": (1, 2),
            "point": Point(1, math.nan),
            "complex": 1 + 2j,
            "weird": Unprintable(),
            1: "int key",
            None: "none key",
            (1, 2): "tuple key",
        }
        decoded = strict_loads(encode(value))
        assert "2026-11-28T02:04:14.123456+00:00" == decoded["when"]
        assert "2026-11-28" == decoded["day"]
        assert "02:04:00" == decoded["at"]
        assert 90.0 == decoded["span"]
        assert 99.9 == decoded["price"]
        assert "0.1000000000000000000000001" == decoded["precise"]
        assert decoded["bad"] is None
        assert "00000000-0000-0000-0000-000000000001" == decoded["uid"]
        assert "/tmp/x" == decoded["path"]
        assert "red" == decoded["color"]
        assert ["a", "b"] == decoded["tags"]
        assert [3] == decoded["frozen"]
        assert [1, 2] == decoded["pair"]
        assert {"x": 1, "y": None} == decoded["point"]
        assert "(1+2j)" == decoded["complex"]
        assert "<unrepresentable Unprintable>" == decoded["weird"]
        assert "int key" == decoded["1"]
        assert "none key" == decoded["null"]
        assert "tuple key" == decoded["(1, 2)"]

    def test_an_object_with_a_str_is_stored_as_that_text(self) -> None:
        class Thing:
            def __str__(self) -> str:
                return "thing!"

        assert "thing!" == strict_loads(encode(Thing()))

    def test_a_mapping_whose_items_raise_does_not_raise(self) -> None:
        class Broken(dict):
            def items(self):  # type: ignore[override]
                raise RuntimeError("boom")

        assert isinstance(strict_loads(encode({"b": Broken(a=1), "n": math.nan})), dict)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
any_values = st.recursive(
    json_scalars | st.datetimes() | st.decimals() | st.uuids() | st.sampled_from(list(Color)),
    lambda children: (
        st.lists(children)
        | st.dictionaries(st.text() | st.integers() | st.none(), children)
        | st.tuples(children, children)
        | st.frozensets(st.integers())
    ),
    max_leaves=30,
)


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(any_values)
    def test_any_value_becomes_strict_json(self, value: Any) -> None:
        strict_loads(encode(value))

    @settings(max_examples=200, deadline=None)
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
            | st.floats(allow_nan=False, allow_infinity=False),
            lambda c: (
                st.lists(c)
                | st.dictionaries(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), c)
            ),
            max_leaves=20,
        )
    )
    def test_plain_json_values_round_trip_unchanged(self, value: Any) -> None:
        assert value == strict_loads(encode(value))
        assert value == to_jsonable(value)
