"""Money: typed amounts become integer minor units, per the currency's decimals; percentages
round half up on integers; nothing negative or absurd gets through."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic_desktop.services import money
from clinic_desktop.services.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("12.5", "USD", 1250),
        ("12", "USD", 1200),
        (".5", "EUR", 50),
        ("0", "USD", 0),
        ("1,234.56", "INR", 123456),
        (" 7.05 ", "GBP", 705),
        ("1500", "JPY", 1500),
        ("1,500", "JPY", 1500),
        ("12.345", "KWD", 12345),
        ("0.001", "BHD", 1),
    ],
)
def test_typed_amounts_become_minor_units(text: str, currency: str, minor: int) -> None:
    assert money.parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("-5", "USD", "cannot be negative"),
        ("12.505", "USD", "at most 2 decimal places"),
        ("12.5", "JPY", "cannot have decimals in JPY"),
        ("1.2345", "KWD", "at most 3 decimal places"),
        ("", "USD", "is required"),
        ("abc", "USD", "must be a number"),
        ("1e5", "USD", "must be a number"),
        ("NaN", "USD", "must be a number"),
        ("12,34", "USD", "must be a number"),
        ("$12", "USD", "must be a number"),
        ("1.2.3", "USD", "must be a number"),
        ("99999999999", "USD", "too large"),
    ],
)
def test_bad_typed_amounts_are_refused_with_a_readable_message(
    text: str, currency: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        money.parse_amount(text, currency, field="price", label="The price")
    assert message in caught.value.fields["price"]


def test_zero_can_be_refused_where_it_makes_no_sense() -> None:
    with pytest.raises(ValidationError, match="more than zero"):
        money.parse_amount("0.00", "USD", allow_zero=False)


def test_check_amount_refuses_floats_bools_and_negatives() -> None:
    for bad in (12.5, True, -1, "12"):
        with pytest.raises(ValidationError):
            money.check_amount(bad, "USD")  # type: ignore[arg-type]
    assert money.check_amount(0, "USD") == 0


def test_the_absurd_limit_is_ten_million_major_units_in_every_currency() -> None:
    assert money.max_minor("USD") == 1_000_000_000
    assert money.max_minor("JPY") == 10_000_000
    assert money.max_minor("KWD") == 10_000_000_000
    money.check_amount(money.max_minor("USD"), "USD")
    with pytest.raises(ValidationError, match="too large"):
        money.check_amount(money.max_minor("USD") + 1, "USD")


def test_currency_codes_are_checked() -> None:
    assert money.check_currency(" usd ") == "USD"
    for bad in ("", "US", "USDX", "12$"):
        with pytest.raises(ValidationError, match="three-letter"):
            money.check_currency(bad)


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (123450, "USD", "USD 1,234.50"),
        (5, "USD", "USD 0.05"),
        (-1250, "EUR", "-EUR 12.50"),
        (1500, "JPY", "JPY 1,500"),
        (12345, "KWD", "KWD 12.345"),
        (0, "INR", "INR 0.00"),
    ],
)
def test_amounts_are_formatted_with_grouping_and_the_currency_decimals(
    minor: int, currency: str, shown: str
) -> None:
    assert money.format_amount(minor, currency) == shown


def test_formatting_can_leave_out_the_code() -> None:
    assert money.format_amount(123450, "USD", with_code=False) == "1,234.50"


@pytest.mark.parametrize(
    ("minor", "bp", "expected"),
    [
        (1000, 1000, 100),  # 10 % of 10.00
        (1005, 1000, 101),  # 100.5 rounds half up
        (1004, 1000, 100),  # 100.4 rounds down
        (333, 5000, 167),  # 166.5 rounds up
        (-1005, 1000, -101),  # negative (credit notes) rounds away from zero too
        (99999, 1800, 18000),  # 17999.82
        (0, 1800, 0),
        (1234, 0, 0),
        (1234, 10000, 1234),
    ],
)
def test_percentages_round_half_up_on_integers(minor: int, bp: int, expected: int) -> None:
    assert money.percent_of(minor, bp) == expected


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10_000))
def test_percent_of_matches_decimal_half_up_rounding(minor: int, bp: int) -> None:
    exact = Decimal(minor) * Decimal(bp) / Decimal(10_000)
    assert money.percent_of(minor, bp) == int(exact.quantize(Decimal(1), "ROUND_HALF_UP"))


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_gives_back_the_same_minor_units(minor: int) -> None:
    shown = money.format_amount(minor, "USD", with_code=False)
    assert money.parse_amount(shown, "USD") == minor


@pytest.mark.parametrize(
    ("text", "bp"), [("12.5", 1250), ("10 %", 1000), ("0", 0), ("100", 10000), ("0.01", 1)]
)
def test_percentages_are_parsed_to_basis_points(text: str, bp: int) -> None:
    assert money.parse_percent(text) == bp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "negative"),
        ("100.5", "more than 100"),
        ("ten", "number"),
        ("", "required"),
        ("1.005", "2 decimal places"),
        ("inf", "number"),
    ],
)
def test_bad_percentages_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        money.parse_percent(text)


def test_basis_points_are_shown_as_percent() -> None:
    assert money.format_percent(1250) == "12.5 %"
    assert money.format_percent(500) == "5 %"
    assert money.format_percent(1) == "0.01 %"
