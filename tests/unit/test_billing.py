"""Billing: price list, bills from finished visits, discount and tax in minor units, invoice
numbers, credit notes, payments, refunds, derived status, receipts and the day-end summary."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select

from clinic_desktop.models import Bill, BillItem, Payment
from clinic_desktop.services import billing
from clinic_desktop.services.billing import (
    add_custom_line,
    add_price_line,
    cancel_with_credit_note,
    create_bill_for_visit,
    issue_bill,
    record_card_payment,
    record_cash_payment,
    refund_payment,
)
from clinic_desktop.services.context import Desk
from clinic_desktop.services.errors import (
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from tests.unit.clinic_world import HOSTILE_TEXTS, World, build_world


@pytest.fixture
def world(bare_desk: Desk) -> World:
    built = build_world(bare_desk)
    billing.create_price_item(
        built.desk,
        built.admin,
        code="CONS-MEHTA",
        name="Consultation - Dr Mehta",
        amount_minor=50000,
        kind="consultation",
        doctor_id=built.doctor.user_id,
    )
    billing.create_price_item(
        built.desk, built.admin, code="ECG", name="ECG", amount_minor=30000, kind="investigation"
    )
    return built


def price_id(world: World, code: str) -> str:
    return next(p.id for p in billing.list_price_items(world.desk) if p.code == code)


def issued_bill(world: World, *extra_codes: str) -> str:
    """An issued bill for a new finished visit: the consultation fee plus ``extra_codes``."""
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    for code in extra_codes:
        add_price_line(world.desk, world.cashier, bill.id, price_id(world, code))
    return issue_bill(world.desk, world.cashier, bill.id).id


# --- price list ---------------------------------------------------------------------------


def test_admins_keep_the_price_list(world: World) -> None:
    item = billing.create_price_item(
        world.desk, world.admin, code="dress-1", name="Dressing, small", amount_minor=15000
    )
    assert (item.code, item.currency, item.kind, item.active) == ("DRESS-1", "INR", "service", True)
    changed = billing.update_price_item(world.desk, world.admin, item.id, amount_minor=17500)
    assert changed.amount_minor == 17500
    hidden = billing.update_price_item(world.desk, world.admin, item.id, active=False)
    assert hidden.active is False
    assert "DRESS-1" not in {p.code for p in billing.list_price_items(world.desk)}
    assert "DRESS-1" in {
        p.code for p in billing.list_price_items(world.desk, include_inactive=True)
    }
    assert world.audit_actions()[-3:] == [
        "price_item.create",
        "price_item.update",
        "price_item.update",
    ]


@pytest.mark.parametrize("who", ["cashier", "doctor", "receptionist"])
def test_only_admins_change_the_price_list(world: World, who: str) -> None:
    with pytest.raises(PermissionDenied, match="admin"):
        billing.create_price_item(
            world.desk, getattr(world, who), code="X", name="X", amount_minor=100
        )


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"code": "ecg"}, "code"),  # unique, whatever the case
        ({"code": "has space"}, "code"),
        ({"code": ""}, "code"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"amount_minor": -100}, "amount_minor"),
        ({"amount_minor": 10**12}, "amount_minor"),
        ({"amount_minor": 12.5}, "amount_minor"),
        ({"kind": "luxury"}, "kind"),
        ({"kind": "consultation"}, "doctor_id"),
        ({"doctor_id": "someone"}, "doctor_id"),
    ],
)
def test_bad_price_items_are_refused_and_nothing_is_written(
    world: World, fields: dict[str, object], bad: str
) -> None:
    values: dict[str, object] = {"code": "NEW", "name": "New service", "amount_minor": 100}
    values.update(fields)
    before = world.outbox_count()
    with pytest.raises(ValidationError) as caught:
        billing.create_price_item(world.desk, world.admin, **values)  # type: ignore[arg-type]
    assert bad in caught.value.fields
    assert world.outbox_count() == before


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_price_names_are_stored_as_typed(world: World, text: str) -> None:
    item = billing.create_price_item(
        world.desk, world.admin, code="ODD", name=text, amount_minor=100
    )
    assert item.name == text.strip()
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    view = add_price_line(world.desk, world.cashier, bill.id, item.id)
    assert view.lines[-1].description == text.strip()


def test_a_doctor_has_one_active_consultation_fee(world: World) -> None:
    with pytest.raises(ValidationError, match="already has a consultation fee"):
        billing.create_price_item(
            world.desk,
            world.admin,
            code="CONS-2",
            name="Second fee",
            amount_minor=1,
            kind="consultation",
            doctor_id=world.doctor.user_id,
        )
    with pytest.raises(ValidationError, match="not a doctor"):
        billing.create_price_item(
            world.desk,
            world.admin,
            code="CONS-3",
            name="Fee",
            amount_minor=1,
            kind="consultation",
            doctor_id=world.cashier.user_id,
        )


# --- bills --------------------------------------------------------------------------------


def test_a_bill_starts_with_the_visit_doctors_consultation_fee(world: World) -> None:
    visit_id = world.add_visit(status="completed")
    bill = create_bill_for_visit(world.desk, world.cashier, visit_id)
    assert bill.status == "draft"
    assert bill.invoice_number is None
    assert bill.currency == "INR"
    assert [(line.description, line.amount_minor) for line in bill.lines] == [
        ("Consultation - Dr Mehta", 50000)
    ]
    assert (bill.subtotal_minor, bill.total_minor, bill.balance_minor) == (50000, 50000, 50000)


def test_a_doctor_without_a_fee_gets_an_empty_draft(world: World) -> None:
    bill = create_bill_for_visit(
        world.desk, world.cashier, world.add_visit(status="completed", doctor=world.other_doctor)
    )
    assert bill.lines == []


def test_only_finished_visits_are_billed_once(world: World) -> None:
    with pytest.raises(InvalidState, match="finished visit"):
        create_bill_for_visit(world.desk, world.cashier, world.add_visit())
    visit_id = world.add_visit(status="completed")
    bill = create_bill_for_visit(world.desk, world.cashier, visit_id)
    with pytest.raises(InvalidState, match="draft bill"):
        create_bill_for_visit(world.desk, world.cashier, visit_id)
    issued = issue_bill(world.desk, world.cashier, bill.id)
    with pytest.raises(InvalidState, match=issued.invoice_number or "?"):
        create_bill_for_visit(world.desk, world.cashier, visit_id)
    with pytest.raises(NotFound):
        create_bill_for_visit(world.desk, world.cashier, "no-such-visit")


@pytest.mark.parametrize("who", ["doctor", "receptionist"])
def test_only_billing_staff_make_bills(world: World, who: str) -> None:
    with pytest.raises(PermissionDenied, match="billing or admin"):
        create_bill_for_visit(world.desk, getattr(world, who), world.add_visit(status="completed"))


def test_lines_from_the_price_list_and_custom_lines_add_up(world: World) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    add_price_line(world.desk, world.cashier, bill.id, price_id(world, "ECG"), quantity="2")
    view = add_custom_line(world.desk, world.cashier, bill.id, "Nebulisation", 12050, 3)
    assert [(line.quantity, line.unit_price_minor, line.amount_minor) for line in view.lines] == [
        (1, 50000, 50000),
        (2, 30000, 60000),
        (3, 12050, 36150),
    ]
    assert view.subtotal_minor == view.total_minor == 146150


def test_a_later_price_change_does_not_touch_existing_lines(world: World) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    billing.update_price_item(
        world.desk, world.admin, price_id(world, "CONS-MEHTA"), amount_minor=1
    )
    assert billing.get_bill(world.desk, world.cashier, bill.id).total_minor == 50000


@pytest.mark.parametrize(
    ("description", "price", "quantity", "bad"),
    [
        ("", 100, 1, "description"),
        ("x" * 201, 100, 1, "description"),
        ("Dressing", -100, 1, "unit_price_minor"),
        ("Dressing", 10**12, 1, "unit_price_minor"),
        ("Dressing", 100, 0, "quantity"),
        ("Dressing", 100, -2, "quantity"),
        ("Dressing", 100, "two", "quantity"),
        ("Dressing", 100, 1001, "quantity"),
        ("Dressing", 900_000_000, 1000, "amount"),
    ],
)
def test_bad_lines_are_refused_and_nothing_is_written(
    world: World, description: str, price: int, quantity: object, bad: str
) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    before = world.outbox_count()
    with pytest.raises(ValidationError) as caught:
        add_custom_line(world.desk, world.cashier, bill.id, description, price, quantity)  # type: ignore[arg-type]
    assert bad in caught.value.fields
    assert world.outbox_count() == before


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_line_descriptions_are_stored_verbatim(world: World, text: str) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    view = add_custom_line(world.desk, world.cashier, bill.id, text, 100)
    assert world.row(BillItem, view.lines[-1].id).description == text


def test_discount_by_amount_or_percent_never_exceeds_the_subtotal(world: World) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    add_custom_line(world.desk, world.cashier, bill.id, "Dressing", 333)  # subtotal 50333
    view = billing.set_discount(world.desk, world.cashier, bill.id, percent_bp=1000)
    assert view.discount_minor == 5033  # 5033.3 rounds down
    view = billing.set_discount(world.desk, world.cashier, bill.id, percent_bp=5)
    assert view.discount_minor == 25  # 25.1665
    view = billing.set_discount(world.desk, world.cashier, bill.id, amount_minor=333)
    assert view.total_minor == 50000
    with pytest.raises(ValidationError, match="more than the bill's subtotal"):
        billing.set_discount(world.desk, world.cashier, bill.id, amount_minor=50334)
    with pytest.raises(ValidationError, match="between 0 and 100"):
        billing.set_discount(world.desk, world.cashier, bill.id, percent_bp=10001)
    with pytest.raises(ValidationError, match="cannot be negative"):
        billing.set_discount(world.desk, world.cashier, bill.id, amount_minor=-1)
    with pytest.raises(ValidationError, match="amount or a percentage"):
        billing.set_discount(world.desk, world.cashier, bill.id, amount_minor=1, percent_bp=1)
    full = billing.set_discount(world.desk, world.cashier, bill.id, percent_bp=10000)
    assert full.total_minor == 0


def test_removing_a_line_below_the_discount_is_refused(world: World) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    view = add_custom_line(world.desk, world.cashier, bill.id, "Dressing", 10000)
    billing.set_discount(world.desk, world.cashier, bill.id, amount_minor=20000)
    with pytest.raises(ValidationError, match="lower the discount first"):
        billing.remove_line(world.desk, world.cashier, view.lines[0].id)
    after = billing.remove_line(world.desk, world.cashier, view.lines[1].id)
    assert after.total_minor == 30000
    assert world.row(BillItem, view.lines[1].id).deleted is True


def test_tax_applies_to_the_discounted_subtotal_rounded_half_up(world: World) -> None:
    world.set_tax(1800)  # 18 %
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    add_custom_line(world.desk, world.cashier, bill.id, "Dressing", 25)  # 50025
    view = billing.set_discount(world.desk, world.cashier, bill.id, amount_minor=22)  # 50003
    assert view.tax_minor == 9001  # 9000.54
    assert view.total_minor == 50003 + 9001
    assert view.subtotal_minor - view.discount_minor + view.tax_minor == view.total_minor


# --- issuing and cancelling ---------------------------------------------------------------


def test_issuing_numbers_bills_per_desk_without_gaps(world: World) -> None:
    numbers = []
    for _ in range(3):
        bill = billing.get_bill(world.desk, world.cashier, issued_bill(world))
        numbers.append(bill.invoice_number)
        assert bill.status == "issued"
        assert bill.issued_at == world.clock.utcnow()
    assert numbers == ["INV-B-000001", "INV-B-000002", "INV-B-000003"]


def test_a_failed_issue_does_not_burn_a_number(world: World) -> None:
    empty = create_bill_for_visit(
        world.desk, world.cashier, world.add_visit(status="completed", doctor=world.other_doctor)
    )
    with pytest.raises(ValidationError, match="at least one line"):
        issue_bill(world.desk, world.cashier, empty.id)
    bill = billing.get_bill(world.desk, world.cashier, issued_bill(world))
    assert bill.invoice_number == "INV-B-000001"


def test_an_issued_bill_is_frozen(world: World) -> None:
    bill_id = issued_bill(world)
    line_id = billing.get_bill(world.desk, world.cashier, bill_id).lines[0].id
    before = world.outbox_count()
    for attempt in (
        lambda: add_custom_line(world.desk, world.cashier, bill_id, "Extra", 100),
        lambda: add_price_line(world.desk, world.cashier, bill_id, price_id(world, "ECG")),
        lambda: billing.remove_line(world.desk, world.cashier, line_id),
        lambda: billing.set_discount(world.desk, world.cashier, bill_id, amount_minor=1),
        lambda: issue_bill(world.desk, world.cashier, bill_id),
        lambda: billing.discard_draft_bill(world.desk, world.cashier, bill_id),
    ):
        with pytest.raises(InvalidState, match="has been issued"):
            attempt()
    assert world.outbox_count() == before


def test_a_credit_note_cancels_an_issued_bill_with_its_own_number(world: World) -> None:
    world.set_tax(500)
    bill_id = issued_bill(world, "ECG")
    original = billing.get_bill(world.desk, world.cashier, bill_id)
    note = cancel_with_credit_note(world.desk, world.cashier, bill_id, "Billed the wrong patient")
    assert note.invoice_number == "INV-B-000002"
    assert note.credit_note_for == bill_id
    assert (note.subtotal_minor, note.tax_minor, note.total_minor) == (
        -original.subtotal_minor,
        -original.tax_minor,
        -original.total_minor,
    )
    assert [line.amount_minor for line in note.lines] == [-50000, -30000]
    voided = billing.get_bill(world.desk, world.cashier, bill_id)
    assert voided.status == "void"
    assert voided.invoice_number == "INV-B-000001"  # never renumbered
    assert voided.void_reason == "Billed the wrong patient"
    assert voided.balance_minor == 0
    with pytest.raises(InvalidState, match="already cancelled"):
        cancel_with_credit_note(world.desk, world.cashier, bill_id, "again")
    with pytest.raises(InvalidState, match="credit note cannot itself"):
        cancel_with_credit_note(world.desk, world.cashier, note.id, "again")
    # the visit can now be billed again, and the next number follows on
    again = create_bill_for_visit(world.desk, world.cashier, original.visit_id or "")
    assert issue_bill(world.desk, world.cashier, again.id).invoice_number == "INV-B-000003"


def test_a_credit_note_needs_a_reason_and_the_money_refunded_first(world: World) -> None:
    bill_id = issued_bill(world)
    with pytest.raises(ValidationError, match="reason"):
        cancel_with_credit_note(world.desk, world.cashier, bill_id, "  ")
    record_cash_payment(world.desk, world.cashier, bill_id, 50000)
    with pytest.raises(InvalidState, match="Refund the money"):
        cancel_with_credit_note(world.desk, world.cashier, bill_id, "Wrong patient")
    draft = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    with pytest.raises(InvalidState, match="discard it instead"):
        cancel_with_credit_note(world.desk, world.cashier, draft.id, "Wrong")


def test_a_draft_is_discarded_without_a_number(world: World) -> None:
    visit_id = world.add_visit(status="completed")
    bill = create_bill_for_visit(world.desk, world.cashier, visit_id)
    billing.discard_draft_bill(world.desk, world.cashier, bill.id)
    assert world.row(Bill, bill.id).deleted is True
    with pytest.raises(NotFound):
        billing.get_bill(world.desk, world.cashier, bill.id)
    create_bill_for_visit(world.desk, world.cashier, visit_id)


# --- payments -----------------------------------------------------------------------------


def test_cash_returns_change_and_records_only_the_amount_applied(world: World) -> None:
    bill_id = issued_bill(world)
    result = record_cash_payment(world.desk, world.cashier, bill_id, tendered_minor=60000)
    assert result.change_minor == 10000
    assert result.payment.amount_minor == 50000
    assert result.payment.method == "cash"
    assert result.bill.status == "paid"
    assert result.bill.balance_minor == 0
    stored = world.row(Payment, result.payment.id)
    assert (stored.received_by, stored.desk_code) == (world.cashier.user_id, "B")


def test_partial_payments_move_the_bill_through_partially_paid_to_paid(world: World) -> None:
    bill_id = issued_bill(world)
    first = record_cash_payment(world.desk, world.cashier, bill_id, 20000)
    assert (first.change_minor, first.bill.status, first.bill.balance_minor) == (
        0,
        "partially_paid",
        30000,
    )
    second = record_card_payment(world.desk, world.cashier, bill_id, 30000, "TID 88812")
    assert second.bill.status == "paid"
    assert second.bill.paid_minor == 50000
    with pytest.raises(InvalidState, match="already paid in full"):
        record_cash_payment(world.desk, world.cashier, bill_id, 100)


def test_cash_can_apply_part_of_what_is_tendered(world: World) -> None:
    bill_id = issued_bill(world)
    result = record_cash_payment(world.desk, world.cashier, bill_id, 50000, amount_minor=20000)
    assert (result.payment.amount_minor, result.change_minor) == (20000, 30000)
    with pytest.raises(ValidationError, match="less than the amount"):
        record_cash_payment(world.desk, world.cashier, bill_id, 100, amount_minor=200)


def test_nothing_is_paid_beyond_the_balance(world: World) -> None:
    bill_id = issued_bill(world)
    before = world.outbox_count()
    with pytest.raises(ValidationError, match="more than the balance due"):
        record_card_payment(world.desk, world.cashier, bill_id, 50001, "TID 1")
    with pytest.raises(ValidationError, match="more than the balance due"):
        record_cash_payment(world.desk, world.cashier, bill_id, 60000, amount_minor=50001)
    assert world.outbox_count() == before


@pytest.mark.parametrize("amount", [0, -100, 10**12])
def test_zero_negative_and_absurd_payments_are_refused(world: World, amount: int) -> None:
    bill_id = issued_bill(world)
    with pytest.raises(ValidationError):
        record_card_payment(world.desk, world.cashier, bill_id, amount, "TID 1")
    with pytest.raises(ValidationError):
        record_cash_payment(world.desk, world.cashier, bill_id, amount)


def test_a_card_payment_needs_the_terminal_reference(world: World) -> None:
    bill_id = issued_bill(world)
    with pytest.raises(ValidationError) as caught:
        record_card_payment(world.desk, world.cashier, bill_id, 100, "  ")
    assert "reference" in caught.value.fields


def test_paying_a_void_bill_a_draft_or_a_credit_note_is_refused(world: World) -> None:
    bill_id = issued_bill(world)
    note = cancel_with_credit_note(world.desk, world.cashier, bill_id, "Duplicate bill")
    with pytest.raises(InvalidState, match="cancelled; it cannot be paid"):
        record_cash_payment(world.desk, world.cashier, bill_id, 100)
    with pytest.raises(InvalidState, match="credit note cannot be paid"):
        record_card_payment(world.desk, world.cashier, note.id, 100, "TID")
    draft = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    with pytest.raises(InvalidState, match="Issue the bill"):
        record_cash_payment(world.desk, world.cashier, draft.id, 100)


@pytest.mark.parametrize("who", ["doctor", "receptionist"])
def test_only_billing_staff_take_money(world: World, who: str) -> None:
    bill_id = issued_bill(world)
    with pytest.raises(PermissionDenied):
        record_cash_payment(world.desk, getattr(world, who), bill_id, 100)


def test_a_disabled_cashier_takes_no_money(world: World) -> None:
    bill_id = issued_bill(world)
    world.disable(world.cashier)
    before = world.outbox_count()
    with pytest.raises(PermissionDenied, match="disabled"):
        record_cash_payment(world.desk, world.cashier, bill_id, 100)
    assert world.outbox_count() == before


# --- refunds ------------------------------------------------------------------------------


def test_a_refund_is_a_negative_payment_with_a_reason(world: World) -> None:
    bill_id = issued_bill(world)
    paid = record_card_payment(world.desk, world.cashier, bill_id, 50000, "TID 1").payment
    result = refund_payment(world.desk, world.cashier, paid.id, 20000, "ECG not done")
    refund = result.payment
    assert (refund.amount_minor, refund.method, refund.refund_of, refund.reason) == (
        -20000,
        "card",
        paid.id,
        "ECG not done",
    )
    assert result.bill.status == "partially_paid"
    assert result.bill.paid_minor == 30000
    final = refund_payment(world.desk, world.cashier, paid.id, 30000, "Patient left")
    assert final.bill.status == "refunded"
    assert final.bill.paid_minor == 0


def test_a_refund_larger_than_what_was_paid_is_refused(world: World) -> None:
    bill_id = issued_bill(world)
    first = record_cash_payment(world.desk, world.cashier, bill_id, 20000).payment
    record_cash_payment(world.desk, world.cashier, bill_id, 30000)
    before = world.outbox_count()
    with pytest.raises(ValidationError, match="more than what was paid"):
        refund_payment(world.desk, world.cashier, first.id, 20001, "Too much")
    assert world.outbox_count() == before
    refund_payment(world.desk, world.cashier, first.id, 15000, "Part")
    before = world.outbox_count()
    with pytest.raises(ValidationError, match=r"at most INR 50\.00"):
        refund_payment(world.desk, world.cashier, first.id, 5001, "Rest and more")
    assert world.outbox_count() == before


def test_refunds_need_a_reason_and_a_positive_amount(world: World) -> None:
    bill_id = issued_bill(world)
    paid = record_cash_payment(world.desk, world.cashier, bill_id, 50000).payment
    with pytest.raises(ValidationError) as caught:
        refund_payment(world.desk, world.cashier, paid.id, -5, "")
    assert set(caught.value.fields) == {"reason", "amount"}
    with pytest.raises(ValidationError, match="more than zero"):
        refund_payment(world.desk, world.cashier, paid.id, 0, "Because")


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_refund_reasons_are_stored_verbatim(world: World, text: str) -> None:
    bill_id = issued_bill(world)
    paid = record_cash_payment(world.desk, world.cashier, bill_id, 50000).payment
    refund = refund_payment(world.desk, world.cashier, paid.id, 100, text).payment
    assert world.row(Payment, refund.id).reason == text


def test_a_doctor_cannot_refund_but_an_admin_can(world: World) -> None:
    bill_id = issued_bill(world)
    paid = record_cash_payment(world.desk, world.cashier, bill_id, 50000).payment
    with pytest.raises(PermissionDenied, match="billing or admin"):
        refund_payment(world.desk, world.doctor, paid.id, 100, "Goodwill")
    refund_payment(world.desk, world.admin, paid.id, 100, "Goodwill")


def test_a_refund_is_not_refunded(world: World) -> None:
    bill_id = issued_bill(world)
    paid = record_cash_payment(world.desk, world.cashier, bill_id, 50000).payment
    refund = refund_payment(world.desk, world.cashier, paid.id, 100, "Part").payment
    with pytest.raises(InvalidState, match="refund cannot itself"):
        refund_payment(world.desk, world.cashier, refund.id, 100, "Again")


def test_payments_are_append_only_rows(world: World) -> None:
    from clinic_desktop.store.tracking import AppendOnlyViolation

    bill_id = issued_bill(world)
    paid = record_cash_payment(world.desk, world.cashier, bill_id, 50000).payment

    def tamper() -> None:
        with world.desk.transaction(world.cashier) as session:
            row = session.get(Payment, paid.id)
            assert row is not None
            row.amount_minor = 1

    with pytest.raises(AppendOnlyViolation):
        tamper()
    assert world.row(Payment, paid.id).amount_minor == 50000


# --- Stripe (server-confirmed) ------------------------------------------------------------


def test_a_confirmed_online_payment_is_recorded_once(world: World) -> None:
    bill_id = issued_bill(world)
    first = billing.record_confirmed_online_payment(
        world.desk, world.cashier, bill_id, 50000, "inr", "cs_test_123"
    )
    assert (first.payment.method, first.bill.status) == ("stripe", "paid")
    again = billing.record_confirmed_online_payment(
        world.desk, world.cashier, bill_id, 50000, "INR", "cs_test_123"
    )
    assert again.payment.id == first.payment.id
    with world.desk.reading() as session:
        count = len(session.scalars(select(Payment).where(Payment.bill_id == bill_id)).all())
    assert count == 1


def test_online_payments_are_checked_against_the_bill(world: World) -> None:
    bill_id = issued_bill(world)
    with pytest.raises(ValidationError, match="another currency"):
        billing.record_confirmed_online_payment(
            world.desk, world.cashier, bill_id, 50000, "USD", "cs_1"
        )
    with pytest.raises(ValidationError, match="balance due"):
        billing.record_confirmed_online_payment(
            world.desk, world.cashier, bill_id, 50001, "INR", "cs_1"
        )
    with pytest.raises(ValidationError, match="reference"):
        billing.record_confirmed_online_payment(world.desk, world.cashier, bill_id, 1, "INR", "")


def test_online_payments_are_refunded_only_through_the_confirmed_path(world: World) -> None:
    bill_id = issued_bill(world)
    paid = billing.record_confirmed_online_payment(
        world.desk, world.cashier, bill_id, 50000, "INR", "pi_1"
    ).payment
    with pytest.raises(InvalidState, match="through Stripe"):
        refund_payment(world.desk, world.cashier, paid.id, 100, "Goodwill")
    result = billing.record_confirmed_online_refund(
        world.desk, world.cashier, paid.id, 100, "Goodwill", "re_1"
    )
    assert (result.payment.method, result.payment.reference) == ("stripe", "re_1")


# --- awaiting, receipts, day end ----------------------------------------------------------


def test_bills_awaiting_lists_finished_visits_without_an_issued_bill(world: World) -> None:
    world.add_visit(status="in_consultation")
    fresh = world.add_visit(status="completed")
    started = world.add_visit(status="completed")
    done = world.add_visit(status="completed")
    draft = create_bill_for_visit(world.desk, world.cashier, started)
    issue_bill(world.desk, world.cashier, create_bill_for_visit(world.desk, world.cashier, done).id)
    waiting = billing.bills_awaiting(world.desk, world.cashier)
    assert [(w.visit_id, w.draft_bill_id) for w in waiting] == [(fresh, None), (started, draft.id)]
    assert waiting[0].patient_name == "Asha Verma"
    assert waiting[0].doctor_name == "Dr Nina Mehta"
    assert waiting[0].token_label.startswith("B-")
    with pytest.raises(PermissionDenied):
        billing.bills_awaiting(world.desk, world.doctor)


def test_a_cancelled_bill_sends_the_visit_back_to_the_waiting_list(world: World) -> None:
    bill_id = issued_bill(world)
    assert billing.bills_awaiting(world.desk) == []
    cancel_with_credit_note(world.desk, world.cashier, bill_id, "Wrong items")
    assert len(billing.bills_awaiting(world.desk)) == 1


def test_the_receipt_shows_lines_totals_and_payments(world: World) -> None:
    world.set_tax(500)
    bill_id = issued_bill(world, "ECG")
    record_cash_payment(world.desk, world.cashier, bill_id, 50000)
    record_card_payment(world.desk, world.cashier, bill_id, 34000, "TID 7")
    doc = billing.receipt_document(world.desk, bill_id, actor=world.cashier)
    assert doc.title == "Receipt"
    assert doc.clinic_name == "Lakeside Clinic"
    assert doc.invoice_number == "INV-B-000001"
    assert doc.patient_name == "Asha Verma"
    assert doc.doctor_name == "Dr Nina Mehta"
    assert [(line.description, line.amount_minor) for line in doc.lines] == [
        ("Consultation - Dr Mehta", 50000),
        ("ECG", 30000),
    ]
    assert (doc.subtotal_minor, doc.tax_rate_bp, doc.tax_minor, doc.total_minor) == (
        80000,
        500,
        4000,
        84000,
    )
    assert [(p.method, p.amount_minor) for p in doc.payments] == [("cash", 50000), ("card", 34000)]
    assert (doc.paid_minor, doc.balance_minor, doc.status) == (84000, 0, "paid")
    assert doc.issued_at is not None
    assert doc.issued_at.utcoffset() is not None
    assert str(doc.issued_at.tzinfo) == "Asia/Kolkata"
    assert doc.printed_by == "Carl Cashier"
    assert world.audit_actions()[-1] == "bill.print"


def test_a_credit_note_prints_as_a_credit_note_naming_the_invoice_it_cancels(
    world: World,
) -> None:
    bill_id = issued_bill(world)
    note = cancel_with_credit_note(world.desk, world.cashier, bill_id, "Wrong patient")
    doc = billing.receipt_document(world.desk, note.id)
    assert (doc.title, doc.invoice_number, doc.cancels_invoice, doc.total_minor) == (
        "Credit note",
        "INV-B-000002",
        "INV-B-000001",
        -50000,
    )
    draft = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    with pytest.raises(InvalidState, match="Issue the bill"):
        billing.receipt_document(world.desk, draft.id)


def test_day_end_summary_by_method_and_cashier_in_the_clinic_time_zone(world: World) -> None:
    second_cashier = world.add_user("cash2", "Dana Desk", ["billing"])
    # 4 March 10:00 Kolkata
    a = issued_bill(world)
    record_cash_payment(world.desk, world.cashier, a, 60000)  # 50000 applied
    b = issued_bill(world, "ECG")
    card = record_card_payment(world.desk, second_cashier, b, 80000, "TID 9").payment
    refund_payment(world.desk, world.cashier, card.id, 30000, "ECG not done")
    # 4 March 23:50 Kolkata = 18:20 UTC: still the 4th for the clinic
    world.clock.moment = datetime.fromisoformat("2026-03-04T18:20:00+00:00")
    c = issued_bill(world)
    record_cash_payment(world.desk, world.cashier, c, 10000)
    # 5 March 00:10 Kolkata = 18:40 UTC on the 4th: the next clinic day
    world.clock.moment = datetime.fromisoformat("2026-03-04T18:40:00+00:00")
    record_cash_payment(world.desk, world.cashier, c, 40000)

    summary = billing.day_end_summary(world.desk, world.cashier, date(2026, 3, 4))

    assert summary.timezone == "Asia/Kolkata"
    assert summary.currency == "INR"
    methods = {line.key: line for line in summary.by_method}
    assert (methods["cash"].payments, methods["cash"].received_minor) == (2, 60000)
    assert (methods["card"].received_minor, methods["card"].refunded_minor) == (80000, 30000)
    assert methods["card"].net_minor == 50000
    assert methods["card"].label == "Card terminal"
    users = {line.label: line for line in summary.by_user}
    assert users["Carl Cashier"].net_minor == 60000 - 30000
    assert users["Dana Desk"].net_minor == 80000
    assert (summary.received_minor, summary.refunded_minor, summary.net_minor) == (
        140000,
        30000,
        110000,
    )
    assert summary.bills_issued == 3
    assert summary.invoiced_minor == 50000 + 80000 + 50000

    next_day = billing.day_end_summary(world.desk, world.admin, date(2026, 3, 5))
    assert next_day.net_minor == 40000
    week = billing.day_end_summary(world.desk, world.admin, date(2026, 3, 1), date(2026, 3, 7))
    assert week.net_minor == 150000


def test_day_end_summary_checks_its_dates_and_role(world: World) -> None:
    with pytest.raises(ValidationError, match="before the first day"):
        billing.day_end_summary(world.desk, world.cashier, date(2026, 3, 4), date(2026, 3, 1))
    with pytest.raises(ValidationError, match="at most one year"):
        billing.day_end_summary(world.desk, world.cashier, date(2024, 1, 1), date(2026, 1, 1))
    with pytest.raises(PermissionDenied):
        billing.day_end_summary(world.desk, world.doctor, date(2026, 3, 4))
    empty = billing.day_end_summary(world.desk, world.cashier, date(2026, 3, 4))
    assert (empty.by_method, empty.net_minor) == ([], 0)


def test_every_billing_write_has_its_outbox_entry_and_audit_event(world: World) -> None:
    before = world.outbox_count()
    bill_id = issued_bill(world)
    record_cash_payment(world.desk, world.cashier, bill_id, 50000)
    # visit (test setup); bill + line + event; bill + event; payment + bill status + event
    assert world.outbox_count() - before == 1 + 3 + 2 + 3
    assert world.audit_actions()[-3:] == ["bill.create", "bill.issue", "payment.record"]
    for event in world.audit_events():
        assert "Asha" not in event.detail


def test_a_receipt_shows_the_rate_the_bill_was_taxed_at_after_the_rate_changes(
    world: World,
) -> None:
    world.set_tax(500)
    bill_id = issued_bill(world)
    world.set_tax(1800)
    doc = billing.receipt_document(world.desk, bill_id)
    assert (doc.tax_rate_bp, doc.tax_minor, doc.title) == (500, 2500, "Invoice")
    note = cancel_with_credit_note(world.desk, world.cashier, bill_id, "Rate check")
    assert billing.receipt_document(world.desk, note.id).tax_rate_bp == 500


def test_a_bill_takes_the_number_series_of_the_desk_that_issues_it(world: World) -> None:
    import secrets

    from clinic_desktop.models.hlc import HybridLogicalClock

    other = Desk(
        engine=world.desk.engine,
        clinic_id=world.desk.clinic_id,
        desk_code="C",
        device_id="device-c",
        audit_key=secrets.token_bytes(32),
        clock=HybridLogicalClock("device-c"),
    )
    other.now = world.clock
    draft = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    issued = issue_bill(other, world.cashier, draft.id)
    assert issued.invoice_number == "INV-C-000001"
    assert world.row(Bill, draft.id).desk_code == "C"


def test_a_zero_total_bill_is_paid_when_issued(world: World) -> None:
    bill = create_bill_for_visit(world.desk, world.cashier, world.add_visit(status="completed"))
    billing.set_discount(world.desk, world.cashier, bill.id, percent_bp=10_000)
    issued = issue_bill(world.desk, world.cashier, bill.id)
    assert (issued.total_minor, issued.status, issued.balance_minor) == (0, "paid", 0)
    with pytest.raises(InvalidState, match="already paid"):
        record_cash_payment(world.desk, world.cashier, bill.id, 100)
