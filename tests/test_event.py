from __future__ import annotations

import datetime
import os
import re
import uuid

import hypothesis.strategies as st
import pytest
from hypothesis import given

from trace_telemetry._event import exception_data, format_timestamp, new_event_id, qualified_name


class PaymentError(Exception):
    class Declined(Exception):
        pass


class TestIds:
    def test_ids_are_uuid4_as_32_lowercase_hex_digits(self) -> None:
        ids = {new_event_id() for _ in range(20_000)}  # many draws of 256
        assert 20_000 == len(ids)
        for value in ids:
            assert re.fullmatch("[0-9a-f]{32}", value)
            parsed = uuid.UUID(value)
            assert 4 == parsed.version
            assert uuid.RFC_4122 == parsed.variant

    def test_every_hex_digit_outside_the_version_and_variant_varies(self) -> None:
        ids = [new_event_id() for _ in range(2000)]
        for position in range(32):
            seen = {value[position] for value in ids}
            if position == 12:
                assert {"4"} == seen
            elif position == 16:
                assert seen == {"8", "9", "a", "b"}
            else:
                assert 16 == len(seen), position

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_forked_child_never_reuses_the_parents_spare_ids(self) -> None:
        new_event_id()  # the parent now holds spare ids
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(reader)
            os.write(writer, " ".join(new_event_id() for _ in range(300)).encode())
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader, "rb") as pipe:
            child = set(pipe.read().decode().split())
        os.waitpid(pid, 0)
        parent = {new_event_id() for _ in range(300)}
        assert 300 == len(child)
        assert not child & parent


class TestTimestamps:
    def test_always_six_fraction_digits_and_a_z(self) -> None:
        assert "1970-01-01T00:00:00.000000Z" == format_timestamp(0.0)
        assert "2026-11-28T02:04:14.123456Z" == format_timestamp(1795831454.123456)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", format_timestamp())

    def test_the_cached_second_does_not_leak_into_another_second(self) -> None:
        assert "2026-11-28T02:04:14.999999Z" == format_timestamp(1795831454.999999)
        assert "2026-11-28T02:04:15.000001Z" == format_timestamp(1795831455.000001)

    @given(st.integers(min_value=0, max_value=4_102_444_799_999_999))  # up to 2099
    def test_every_microsecond_formats_like_datetime(self, micros: int) -> None:
        moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        moment += datetime.timedelta(microseconds=micros)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert expected == format_timestamp(micros / 1_000_000) or (
            # float seconds cannot hold every microsecond of 2099 exactly
            abs(micros / 1_000_000 * 1_000_000 - micros) >= 0.5
        )

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30, "x"])
    def test_a_bad_timestamp_falls_back_to_now(self, bad: object) -> None:
        assert re.fullmatch(r"\d{4}-.*\.\d{6}Z", format_timestamp(bad))  # type: ignore[arg-type]


class TestExceptionData:
    def test_the_contract_shape_with_chained_causes(self) -> None:
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise PaymentError.Declined("card declined") from inner
        except PaymentError.Declined as error:
            caught = error
        data = exception_data(caught, {"step": "checkout", "message": "loses"})
        assert "card declined" == data["message"]
        assert "tests.test_event.PaymentError.Declined" == data["exceptionType"]
        assert "'inner'" == data["innerMessage"]
        assert "checkout" == data["step"]
        assert "KeyError: 'inner'" in data["stackTrace"]
        assert "direct cause" in data["stackTrace"]
        assert "raise PaymentError.Declined" in data["stackTrace"]

    def test_builtins_have_their_bare_name_and_no_inner_message(self) -> None:
        data = exception_data(ValueError("bad"))
        assert "ValueError" == data["exceptionType"]
        assert "innerMessage" not in data
        assert "ValueError: bad" in data["stackTrace"]

    def test_suppressed_context_is_not_an_inner_message(self) -> None:
        try:
            try:
                raise KeyError("hidden")
            except KeyError:
                raise ValueError("shown") from None
        except ValueError as error:
            assert "innerMessage" not in exception_data(error)

    def test_implicit_context_is_the_inner_message(self) -> None:
        try:
            try:
                raise KeyError("first")
            except KeyError:
                raise ValueError("second")
        except ValueError as error:
            assert "'first'" == exception_data(error)["innerMessage"]

    def test_non_mapping_extra_data_goes_under_extra(self) -> None:
        assert [1, 2] == exception_data(ValueError(), [1, 2])["extra"]

    def test_an_extra_inner_message_never_pretends_to_be_a_cause(self) -> None:
        assert "innerMessage" not in exception_data(ValueError("x"), {"innerMessage": "fake"})

    def test_a_non_exception_is_described_not_raised_on(self) -> None:
        data = exception_data("just a string")  # type: ignore[arg-type]
        assert ("just a string", "str", "") == (
            data["message"],
            data["exceptionType"],
            data["stackTrace"],
        )

    def test_qualified_name_of_main_module_classes(self) -> None:
        cls = type("Local", (Exception,), {"__module__": "__main__"})
        assert "__main__.Local" == qualified_name(cls)
