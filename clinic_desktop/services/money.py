"""Money as integer minor units plus an ISO 4217 currency code; never floats.

Amounts a person types ("12.50", "1,234.5") are parsed with :class:`decimal.Decimal` and
checked against the currency's number of decimals (JPY has none, KWD has three). Percentages
are basis points (``1250`` = 12.5 %) and every percentage of an amount rounds half up, away
from zero, on integers, so a desk and the server always agree to the last minor unit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from clinic_desktop.services.errors import ValidationError

# ISO 4217 minor-unit exponents that differ from the usual 2.
_EXPONENTS: dict[str, int] = {
    # no minor unit
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # thousandths
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}

_CURRENCY = re.compile(r"^[A-Z]{3}$")

# No single line, bill or payment at a clinic comes near ten million major units; anything
# larger is a typing slip (an extra zero or two), so it is refused rather than stored.
MAX_MAJOR_UNITS = 10_000_000

BASIS_POINTS = 10_000  # 100 %

_GROUPED = re.compile(r"^\d{1,3}(,\d{3})+(\.\d*)?$")
_PLAIN = re.compile(r"^\d*(\.\d*)?$")


def check_currency(currency: str) -> str:
    """The upper-case ISO code, or a :class:`ValidationError` for anything else."""
    code = (currency or "").strip().upper()
    if not _CURRENCY.match(code):
        raise ValidationError({"currency": "Choose a three-letter currency code such as USD."})
    return code


def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (2 unless listed otherwise)."""
    return _EXPONENTS.get(check_currency(currency), 2)


def max_minor(currency: str) -> int:
    """The largest amount accepted for one line, bill or payment, in minor units."""
    return MAX_MAJOR_UNITS * 10 ** exponent(currency)


def parse_amount(
    text: str | int | Decimal,
    currency: str,
    *,
    field: str = "amount",
    label: str = "Amount",
    allow_zero: bool = True,
) -> int:
    """A typed amount in major units ("12.50") as minor units (1250).

    Accepts thousands separators written as commas ("1,234.50") and a leading currency symbol
    or code is not accepted: the form shows the currency beside the field.
    """
    digits = exponent(currency)
    if isinstance(text, bool):
        raise ValidationError({field: f"{label} must be a number."})
    if isinstance(text, int):
        value = Decimal(text)
    elif isinstance(text, Decimal):
        value = text
    else:
        raw = str(text).strip().replace(" ", "").replace("\u00a0", "")
        if raw == "":
            raise ValidationError({field: f"{label} is required."})
        if raw.startswith("-"):
            raise ValidationError({field: f"{label} cannot be negative."})
        if raw.startswith("+"):
            raw = raw[1:]
        if _GROUPED.match(raw):
            raw = raw.replace(",", "")
        elif not _PLAIN.match(raw) or raw in {"", "."}:
            raise ValidationError({field: f"{label} must be a number such as 12.50."})
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValidationError({field: f"{label} must be a number such as 12.50."}) from None
    if not value.is_finite():
        raise ValidationError({field: f"{label} must be a number such as 12.50."})
    if value < 0:
        raise ValidationError({field: f"{label} cannot be negative."})
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        if digits == 0:
            message = f"{label} cannot have decimals in {check_currency(currency)}."
        else:
            message = f"{label} can have at most {digits} decimal places."
        raise ValidationError({field: message})
    minor = int(scaled)
    return check_amount(minor, currency, field=field, label=label, allow_zero=allow_zero)


def check_amount(
    minor: int,
    currency: str,
    *,
    field: str = "amount",
    label: str = "Amount",
    allow_zero: bool = True,
) -> int:
    """Validate an amount already in minor units: an integer, not negative, not absurd."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise ValidationError({field: f"{label} must be a whole number of minor units."})
    if minor < 0:
        raise ValidationError({field: f"{label} cannot be negative."})
    if minor == 0 and not allow_zero:
        raise ValidationError({field: f"{label} must be more than zero."})
    if minor > max_minor(currency):
        limit = format_amount(max_minor(currency), currency)
        raise ValidationError({field: f"{label} is too large (the limit is {limit})."})
    return minor


def format_amount(minor: int, currency: str, *, with_code: bool = True) -> str:
    """Minor units for display: ``format_amount(123450, "USD") == "USD 1,234.50"``."""
    code = check_currency(currency)
    digits = _EXPONENTS.get(code, 2)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    text = f"{whole:,}"
    if digits:
        text += f".{frac:0{digits}d}"
    return f"{sign}{code} {text}" if with_code else f"{sign}{text}"


def round_half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (the way a cashier rounds)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def percent_of(minor: int, basis_points: int) -> int:
    """``basis_points`` / 100 percent of ``minor``, rounded half up: (1005, 1000) -> 101."""
    return round_half_up_div(minor * basis_points, BASIS_POINTS)


def parse_percent(text: str | int | Decimal, *, field: str = "percent") -> int:
    """A typed percentage ("12.5", "12.5 %") as basis points (1250), between 0 and 100."""
    if isinstance(text, bool):
        raise ValidationError({field: "The percentage must be a number."})
    raw = str(text).strip().rstrip("%").strip()
    if raw == "":
        raise ValidationError({field: "The percentage is required."})
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValidationError({field: "The percentage must be a number such as 10."}) from None
    if not value.is_finite():
        raise ValidationError({field: "The percentage must be a number such as 10."})
    if value < 0:
        raise ValidationError({field: "The percentage cannot be negative."})
    if value > 100:
        raise ValidationError({field: "The percentage cannot be more than 100."})
    scaled = value.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise ValidationError({field: "The percentage can have at most 2 decimal places."})
    return int(scaled)


def format_percent(basis_points: int) -> str:
    """Basis points for display: 1250 -> "12.5 %", 500 -> "5 %"."""
    whole, frac = divmod(basis_points, 100)
    if frac == 0:
        return f"{whole} %"
    return f"{whole}.{frac:02d}".rstrip("0") + " %"
