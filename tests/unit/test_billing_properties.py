"""Billing invariants under generated inputs: totals always add up in integers, and no mix
of payments and refunds ever takes more than the total or gives back more than was paid."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinic_desktop.services import billing, money
from clinic_desktop.services.context import Desk
from clinic_desktop.services.errors import ClinicError
from tests.unit.clinic_world import World, build_world

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def world(bare_desk: Desk) -> World:
    return build_world(bare_desk)


lines_strategy = st.lists(
    st.tuples(st.integers(min_value=0, max_value=500_000), st.integers(min_value=1, max_value=20)),
    min_size=1,
    max_size=6,
)


@PROPERTY_SETTINGS
@given(
    lines=lines_strategy,
    tax_bp=st.integers(min_value=0, max_value=3000),
    discount_bp=st.integers(min_value=0, max_value=10_000),
)
def test_totals_always_add_up_in_minor_units(
    world: World, lines: list[tuple[int, int]], tax_bp: int, discount_bp: int
) -> None:
    world.set_tax(tax_bp)
    bill = billing.create_bill_for_visit(
        world.desk, world.cashier, world.add_visit(status="completed")
    )
    for price, quantity in lines:
        billing.add_custom_line(world.desk, world.cashier, bill.id, "Line", price, quantity)
    view = billing.set_discount(world.desk, world.cashier, bill.id, percent_bp=discount_bp)
    issued = billing.issue_bill(world.desk, world.cashier, bill.id)

    subtotal = sum(price * quantity for price, quantity in lines)
    discount = money.percent_of(subtotal, discount_bp)
    tax = money.percent_of(subtotal - discount, tax_bp)
    assert (view.subtotal_minor, view.discount_minor) == (subtotal, discount)
    assert issued.tax_minor == tax
    assert issued.total_minor == subtotal - discount + tax
    assert all(isinstance(v, int) for v in (issued.total_minor, issued.tax_minor))
    assert 0 <= issued.discount_minor <= issued.subtotal_minor


operations = st.lists(
    st.tuples(
        st.sampled_from(["cash", "card", "refund"]),
        st.integers(min_value=-100, max_value=80_000),
    ),
    min_size=1,
    max_size=12,
)


@PROPERTY_SETTINGS
@given(ops=operations)
def test_payments_and_refunds_stay_within_what_is_owed_and_paid(
    world: World, ops: list[tuple[str, int]]
) -> None:
    bill = billing.create_bill_for_visit(
        world.desk, world.cashier, world.add_visit(status="completed")
    )
    billing.add_custom_line(world.desk, world.cashier, bill.id, "Procedure", 100_000)
    bill_id = billing.issue_bill(world.desk, world.cashier, bill.id).id
    taken: list[str] = []
    for kind, amount in ops:
        try:
            if kind == "cash":
                taken.append(
                    billing.record_cash_payment(
                        world.desk, world.cashier, bill_id, amount
                    ).payment.id
                )
            elif kind == "card":
                result = billing.record_card_payment(
                    world.desk, world.cashier, bill_id, amount, "TID"
                )
                taken.append(result.payment.id)
            elif taken:
                billing.refund_payment(world.desk, world.cashier, taken[-1], amount, "Returned")
        except ClinicError:
            pass  # refused: the invariants below must still hold
        view = billing.get_bill(world.desk, world.cashier, bill_id)
        assert 0 <= view.paid_minor <= view.total_minor
        assert view.balance_minor == view.total_minor - view.paid_minor
        for payment in view.payments:
            if payment.amount_minor > 0:
                refunded = -sum(p.amount_minor for p in view.payments if p.refund_of == payment.id)
                assert 0 <= refunded <= payment.amount_minor
        expected = (
            "paid"
            if view.paid_minor == view.total_minor
            else "partially_paid"
            if view.paid_minor > 0
            else "refunded"
            if any(p.amount_minor < 0 for p in view.payments)
            else "issued"
        )
        assert view.status == expected
