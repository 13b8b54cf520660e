"""Loan quotes: what the JSON API checks and computes, with no HTTP in sight.

Everything in a request is hostile: a field of the wrong type, a number out
of range, NaN, a boolean posing as a number (``True`` is an ``int`` in
Python) or more than cents is a :class:`InvalidQuote` listing every field
that is wrong.  Money is :class:`~decimal.Decimal`, rounded to cents once.

>>> q = quote(parse_quote_request({"amount": "12000", "term": 36}))
>>> q.annual_rate, q.monthly_payment, q.total_repaid
(Decimal('7.40'), Decimal('372.72'), Decimal('13417.92'))
>>> try:
...     parse_quote_request({"amount": True, "term": 7})
... except InvalidQuote as exc:
...     print([error.field for error in exc.errors])
['amount', 'term']
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Final

__all__ = [
    "MAX_AMOUNT",
    "MIN_AMOUNT",
    "TERMS",
    "FieldError",
    "InvalidQuote",
    "Quote",
    "QuoteRequest",
    "parse_quote_request",
    "quote",
]

MIN_AMOUNT: Final = Decimal(1000)  # the product's smallest loan, in dollars
MAX_AMOUNT: Final = Decimal(50000)  # and its largest
TERMS: Final = (12, 24, 36, 48, 60, 72, 84)  # months the product offers
# Yearly rate, percent, by the longest term it applies to: longer loans cost more.
RATES: Final = ((24, Decimal("6.90")), (48, Decimal("7.40")), (84, Decimal("7.90")))
CENT: Final = Decimal("0.01")
_AMOUNT_TEXT: Final = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,2})?")
_TERM_TEXT: Final = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One wrong field: its name and what is wrong with it, in words for people."""

    field: str
    detail: str


class InvalidQuote(ValueError):
    """A quote request with wrong fields; ``errors`` lists every one."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.detail for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    amount: Decimal  # dollars, two decimals
    term: int  # months


@dataclass(frozen=True, slots=True)
class Quote:
    """A quote as the API sends it: money as strings of dollars with two decimals."""

    amount: Decimal
    term: int
    annual_rate: Decimal  # percent a year
    monthly_payment: Decimal
    total_repaid: Decimal
    total_interest: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "amount": str(self.amount),
            "term": self.term,
            "annual_rate": str(self.annual_rate),
            "monthly_payment": str(self.monthly_payment),
            "total_repaid": str(self.total_repaid),
            "total_interest": str(self.total_interest),
            "currency": "USD",
        }


def parse_quote_request(fields: Mapping[str, object]) -> QuoteRequest:
    """Check ``amount`` and ``term`` (from JSON or a query string); other keys are ignored."""
    errors: list[FieldError] = []
    amount = _amount(fields.get("amount"), errors)
    term = _term(fields.get("term"), errors)
    if errors or amount is None or term is None:
        raise InvalidQuote(errors)
    return QuoteRequest(amount, term)


def quote(request: QuoteRequest) -> Quote:
    """The fixed monthly payment that repays ``amount`` over ``term`` months
    (the annuity formula, P·r / (1 - (1 + r)^-n), rounded to cents)."""
    rate = next(rate for longest, rate in RATES if request.term <= longest)
    with localcontext() as context:
        context.prec = 28
        monthly = rate / 1200
        factor = 1 - (1 + monthly) ** -request.term
        payment = (request.amount * monthly / factor).quantize(CENT, ROUND_HALF_UP)
    total = payment * request.term
    return Quote(
        amount=request.amount,
        term=request.term,
        annual_rate=rate,
        monthly_payment=payment,
        total_repaid=total,
        total_interest=total - request.amount,
    )


def _amount(value: object, errors: list[FieldError]) -> Decimal | None:
    text: str | None = None
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(value) if math.isfinite(value) else None
        text = text.removesuffix(".0") if text else None
    if text is None or not _AMOUNT_TEXT.fullmatch(text):
        need = "is missing: give" if value is None else "must be"
        errors.append(FieldError("amount", f"amount {need} a number of dollars, like 12000.50"))
        return None
    amount = Decimal(text).quantize(CENT)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        errors.append(
            FieldError("amount", f"amount must be from {MIN_AMOUNT:,} to {MAX_AMOUNT:,} dollars")
        )
        return None
    return amount


def _term(value: object, errors: list[FieldError]) -> int | None:
    term: int | None = None
    if type(value) is int:
        term = value
    elif isinstance(value, str) and _TERM_TEXT.fullmatch(value.strip()):
        term = int(value)
    if term not in TERMS:
        offered = ", ".join(map(str, TERMS))
        need = "is missing: give" if value is None else "must be"
        errors.append(FieldError("term", f"term {need} one of {offered} months"))
        return None
    return term
