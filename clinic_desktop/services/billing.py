"""Price list, bills, payments, refunds and the day-end collection summary.

Rules the cashier (and the auditor) can rely on:

- Money is integer minor units in the clinic's currency; see :mod:`money`.
- A bill starts as a draft from a completed visit, pre-filled with that doctor's consultation
  fee. Lines, discount (an amount or a percentage, never more than the subtotal) and tax (the
  clinic's rate on the discounted subtotal, rounded half up) change only while it is a draft.
- Issuing gives it the desk's next invoice number (gap-free, never reused) and freezes it.
  An issued bill is cancelled only by a credit note: a new bill with its own number, negative
  totals and ``credit_note_for`` pointing at the original, which becomes ``void``. Money taken
  on it has to be refunded first.
- Payments are append-only rows. Cash records the amount applied and returns the change; a
  card-terminal payment needs the slip reference; nothing is taken beyond the balance due.
  A refund is a negative payment with a reason, never more than what is left of the payment
  it refunds. Only billing staff and admins take or refund money.
- The bill's status follows from its payments: issued, partially_paid, paid, refunded (all
  money returned), void (cancelled by a credit note).
- Stripe payments are recorded only through :func:`record_confirmed_online_payment`, called
  after the central server confirmed the Checkout Session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinic_desktop.models import Bill, BillItem, Patient, Payment, PriceItem, User, Visit
from clinic_desktop.models.billing import bill_status
from clinic_desktop.services import money
from clinic_desktop.services.audit import record_event
from clinic_desktop.services.consultation import check_text, clinic_settings, clinic_zone
from clinic_desktop.services.context import Actor, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, ValidationError
from clinic_desktop.services.numbering import next_invoice_number
from clinic_desktop.services.users import authorize

PRICE_KINDS = ("consultation", "procedure", "investigation", "medicine", "service", "other")
_PRICE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
MAX_QUANTITY = 1_000
MAX_LINES = 100
MIN_REASON = 3
MAX_REASON = 500
CASHIER_ROLES = ("billing", "admin")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


# --- read models --------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceItemView:
    id: str
    code: str
    name: str
    kind: str
    doctor_id: str | None
    amount_minor: int
    currency: str
    active: bool


@dataclass(frozen=True)
class BillLine:
    id: str
    position: int
    price_item_id: str | None
    description: str
    quantity: int
    unit_price_minor: int
    amount_minor: int


@dataclass(frozen=True)
class PaymentView:
    id: str
    method: str
    amount_minor: int  # negative for a refund
    currency: str
    received_at: datetime
    received_by: str
    reference: str
    refund_of: str | None
    reason: str


@dataclass(frozen=True)
class BillView:
    id: str
    visit_id: str | None
    patient_id: str
    invoice_number: str | None
    status: str
    currency: str
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    total_minor: int
    paid_minor: int  # net of refunds
    balance_minor: int  # still due (0 for a credit note or a void bill)
    issued_at: datetime | None
    credit_note_for: str | None
    void_reason: str
    lines: list[BillLine]
    payments: list[PaymentView]


@dataclass(frozen=True)
class PaymentResult:
    payment: PaymentView
    change_minor: int  # cash handed back (0 for anything else)
    bill: BillView


# --- helpers ------------------------------------------------------------------------------


def _currency(session: Session, desk: Desk) -> str:
    settings = clinic_settings(session, desk)
    return money.check_currency(settings.currency if settings else "USD")


def _tax_rate(session: Session, desk: Desk) -> int:
    settings = clinic_settings(session, desk)
    return max(0, settings.tax_rate_bp) if settings else 0


def _price_view(item: PriceItem) -> PriceItemView:
    return PriceItemView(
        id=item.id,
        code=item.code,
        name=item.name,
        kind=item.kind,
        doctor_id=item.doctor_id,
        amount_minor=item.amount_minor,
        currency=item.currency,
        active=item.active,
    )


def _lines(session: Session, bill_id: str) -> list[BillItem]:
    return list(
        session.scalars(
            select(BillItem)
            .where(BillItem.bill_id == bill_id, BillItem.deleted.is_(False))
            .order_by(BillItem.position)
        )
    )


def _payments(session: Session, bill_id: str) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.bill_id == bill_id, Payment.deleted.is_(False))
            .order_by(Payment.received_at, Payment.updated_at, Payment.id)
        )
    )


def _payment_view(p: Payment) -> PaymentView:
    return PaymentView(
        id=p.id,
        method=p.method,
        amount_minor=p.amount_minor,
        currency=p.currency,
        received_at=p.received_at,
        received_by=p.received_by,
        reference=p.reference,
        refund_of=p.refund_of,
        reason=p.reason,
    )


def _balance(bill: Bill, paid: int) -> int:
    if bill.status in ("draft", "void") or bill.credit_note_for:
        return 0 if bill.status != "draft" else bill.total_minor
    return max(0, bill.total_minor - paid)


def _view(session: Session, bill: Bill) -> BillView:
    payments = _payments(session, bill.id)
    paid = sum(p.amount_minor for p in payments)
    return BillView(
        id=bill.id,
        visit_id=bill.visit_id,
        patient_id=bill.patient_id,
        invoice_number=bill.invoice_number,
        status=bill.status,
        currency=bill.currency,
        subtotal_minor=bill.subtotal_minor,
        discount_minor=bill.discount_minor,
        tax_minor=bill.tax_minor,
        total_minor=bill.total_minor,
        paid_minor=paid,
        balance_minor=_balance(bill, paid),
        issued_at=bill.issued_at,
        credit_note_for=bill.credit_note_for,
        void_reason=bill.void_reason,
        lines=[
            BillLine(
                id=i.id,
                position=i.position,
                price_item_id=i.price_item_id,
                description=i.description,
                quantity=i.quantity,
                unit_price_minor=i.unit_price_minor,
                amount_minor=i.amount_minor,
            )
            for i in _lines(session, bill.id)
        ],
        payments=[_payment_view(p) for p in payments],
    )


def derive_status(bill: Bill, payments: list[Payment]) -> str:
    """The status an issued bill has given its payments (drafts and void bills keep theirs)."""
    return bill_status(
        bill, sum(p.amount_minor for p in payments), any(p.amount_minor < 0 for p in payments)
    )


def _load_bill(session: Session, desk: Desk, bill_id: str) -> Bill:
    bill = session.get(Bill, bill_id)
    if bill is None or bill.deleted or bill.clinic_id != desk.clinic_id:
        raise NotFound("That bill no longer exists.")
    return bill


def _draft(session: Session, desk: Desk, bill_id: str) -> Bill:
    bill = _load_bill(session, desk, bill_id)
    if bill.status != "draft":
        raise InvalidState("This bill has been issued; its items and amounts can no longer change.")
    return bill


def _recompute(session: Session, desk: Desk, bill: Bill, lines: list[BillItem]) -> None:
    """Subtotal, tax and total from the lines and the discount (validated by the caller)."""
    with session.no_autoflush:  # one insert or update per bill, not a half-totalled one first
        rate = _tax_rate(session, desk)
    subtotal = sum(line.amount_minor for line in lines)
    taxable = subtotal - bill.discount_minor
    tax = money.percent_of(taxable, rate)
    bill.subtotal_minor, bill.tax_minor, bill.total_minor = subtotal, tax, taxable + tax


def _check_totals(lines_total: int, discount: int, currency: str, errors: dict[str, str]) -> None:
    if discount > lines_total:
        errors["discount"] = (
            "The discount cannot be more than the bill's subtotal "
            f"({money.format_amount(lines_total, currency)})."
        )
    if lines_total > money.max_minor(currency):
        errors[""] = "The bill's total is too large; check the amounts and quantities."


def _quantity(value: object, errors: dict[str, str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors["quantity"] = "The quantity must be a whole number."
        return 0
    text = str(value).strip()
    if text.startswith("-"):
        errors["quantity"] = "The quantity cannot be negative."
        return 0
    if not text.isdigit():
        errors["quantity"] = "The quantity must be a whole number."
        return 0
    number = int(text)
    if not 1 <= number <= MAX_QUANTITY:
        errors["quantity"] = f"The quantity must be between 1 and {MAX_QUANTITY}."
    return number


def _reason(value: object, errors: dict[str, str]) -> str:
    text = check_text(value, "reason", "The reason", MAX_REASON, errors)
    if "reason" not in errors and len(text.strip()) < MIN_REASON:
        errors["reason"] = "Give a reason (a few words) for the record."
    return text


# --- price list ---------------------------------------------------------------------------


def list_price_items(
    desk: Desk, *, include_inactive: bool = False, kind: str | None = None
) -> list[PriceItemView]:
    """The price list, by code (what the bill builder offers)."""
    with desk.reading() as session:
        query = select(PriceItem).where(
            PriceItem.clinic_id == desk.clinic_id, PriceItem.deleted.is_(False)
        )
        if not include_inactive:
            query = query.where(PriceItem.active.is_(True))
        if kind:
            query = query.where(PriceItem.kind == kind)
        return [_price_view(p) for p in session.scalars(query.order_by(PriceItem.code))]


def _check_fee_doctor(
    session: Session,
    desk: Desk,
    kind: str,
    doctor_id: str | None,
    exclude_id: str | None,
    errors: dict[str, str],
) -> None:
    if kind != "consultation":
        if doctor_id:
            errors["doctor_id"] = "Only a consultation fee belongs to a doctor."
        return
    if not doctor_id:
        errors["doctor_id"] = "Choose the doctor this consultation fee is for."
        return
    doctor = session.get(User, doctor_id)
    if doctor is None or doctor.deleted or not doctor.has_role("doctor"):
        errors["doctor_id"] = "The chosen user is not a doctor."
        return
    clash = session.scalar(
        select(PriceItem.id).where(
            PriceItem.clinic_id == desk.clinic_id,
            PriceItem.deleted.is_(False),
            PriceItem.active.is_(True),
            PriceItem.kind == "consultation",
            PriceItem.doctor_id == doctor_id,
            PriceItem.id != (exclude_id or ""),
        )
    )
    if clash:
        errors["doctor_id"] = "This doctor already has a consultation fee; change that one."


def create_price_item(
    desk: Desk,
    actor: Actor,
    *,
    code: str,
    name: str,
    amount_minor: int,
    kind: str = "service",
    doctor_id: str | None = None,
) -> PriceItemView:
    """Add a billable service (admins only). Codes are unique, case-insensitively."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="change the price list")
        currency = _currency(session, desk)
        errors: dict[str, str] = {}
        clean_code = (code or "").strip().upper() if isinstance(code, str) else ""
        if not _PRICE_CODE.match(clean_code):
            errors["code"] = (
                "The code is 1 to 32 letters, digits, dots, dashes or underscores (e.g. CONS-1)."
            )
        elif session.scalar(
            select(PriceItem.id).where(
                PriceItem.clinic_id == desk.clinic_id,
                PriceItem.deleted.is_(False),
                func.upper(PriceItem.code) == clean_code,
            )
        ):
            errors["code"] = f"The code {clean_code} is already used in the price list."
        clean_name = check_text(name, "name", "The name", 200, errors)
        if "name" not in errors and not clean_name.strip():
            errors["name"] = "Enter the name shown on the bill."
        if kind not in PRICE_KINDS:
            errors["kind"] = "Choose a kind from the list."
        else:
            _check_fee_doctor(session, desk, kind, doctor_id, None, errors)
        try:
            money.check_amount(amount_minor, currency, field="amount_minor", label="The price")
        except ValidationError as exc:
            errors.update(exc.fields)
        if errors:
            raise ValidationError(errors)
        item = PriceItem(
            clinic_id=desk.clinic_id,
            code=clean_code,
            name=clean_name.strip(),
            kind=kind,
            doctor_id=doctor_id if kind == "consultation" else None,
            amount_minor=amount_minor,
            currency=currency,
            active=True,
        )
        session.add(item)
        record_event(session, desk, actor, "price_item.create", "price_item", item.id)
        return _price_view(item)


def update_price_item(
    desk: Desk,
    actor: Actor,
    price_item_id: str,
    *,
    name: str | _Unset = UNSET,
    amount_minor: int | _Unset = UNSET,
    active: bool | _Unset = UNSET,
) -> PriceItemView:
    """Rename, re-price or (de)activate a price-list entry (admins only). Bills already made
    keep the price they were made with; the code and kind never change."""
    with desk.transaction(actor) as session:
        authorize(session, actor, "admin", action="change the price list")
        item = session.get(PriceItem, price_item_id)
        if item is None or item.deleted or item.clinic_id != desk.clinic_id:
            raise NotFound("That price-list entry no longer exists.")
        errors: dict[str, str] = {}
        changes: dict[str, object] = {}
        if not isinstance(name, _Unset):
            clean = check_text(name, "name", "The name", 200, errors)
            if "name" not in errors and not clean.strip():
                errors["name"] = "Enter the name shown on the bill."
            changes["name"] = clean.strip()
        if not isinstance(amount_minor, _Unset):
            try:
                money.check_amount(
                    amount_minor, item.currency, field="amount_minor", label="The price"
                )
            except ValidationError as exc:
                errors.update(exc.fields)
            changes["amount_minor"] = amount_minor
        if not isinstance(active, _Unset):
            if not isinstance(active, bool):
                errors["active"] = "Choose active or inactive."
            elif active and not item.active:
                _check_fee_doctor(session, desk, item.kind, item.doctor_id, item.id, errors)
            changes["active"] = active
        if errors:
            raise ValidationError(errors)
        changed = [k for k, v in changes.items() if getattr(item, k) != v]
        for key in changed:
            setattr(item, key, changes[key])
        if changed:
            record_event(
                session,
                desk,
                actor,
                "price_item.update",
                "price_item",
                item.id,
                "fields=" + ",".join(sorted(changed)),
            )
        return _price_view(item)


# --- bills --------------------------------------------------------------------------------


def _visit_bills(session: Session, visit_id: str) -> list[Bill]:
    return list(
        session.scalars(
            select(Bill).where(
                Bill.visit_id == visit_id, Bill.deleted.is_(False), Bill.credit_note_for.is_(None)
            )
        )
    )


def create_bill_for_visit(desk: Desk, actor: Actor, visit_id: str) -> BillView:
    """A draft bill for a finished visit, with the visit doctor's consultation fee on it."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="make a bill")
        visit = session.get(Visit, visit_id)
        if visit is None or visit.deleted or visit.clinic_id != desk.clinic_id:
            raise NotFound("That visit no longer exists.")
        if visit.status != "completed":
            raise InvalidState("Only a finished visit can be billed.")
        live = [b for b in _visit_bills(session, visit.id) if b.status != "void"]
        if live:
            number = live[0].invoice_number
            raise InvalidState(
                f"This visit already has a bill ({number})."
                if number
                else "This visit already has a draft bill; open it."
            )
        currency = _currency(session, desk)
        bill = Bill(
            clinic_id=desk.clinic_id,
            visit_id=visit.id,
            patient_id=visit.patient_id,
            desk_code=desk.desk_code,
            status="draft",
            currency=currency,
        )
        fee = session.scalars(
            select(PriceItem).where(
                PriceItem.clinic_id == desk.clinic_id,
                PriceItem.deleted.is_(False),
                PriceItem.active.is_(True),
                PriceItem.kind == "consultation",
                PriceItem.doctor_id == visit.doctor_id,
                PriceItem.currency == currency,
            )
        ).first()
        session.add(bill)
        lines: list[BillItem] = []
        if fee is not None:
            line = BillItem(
                clinic_id=desk.clinic_id,
                bill_id=bill.id,
                position=1,
                price_item_id=fee.id,
                description=fee.name,
                quantity=1,
                unit_price_minor=fee.amount_minor,
                amount_minor=fee.amount_minor,
            )
            session.add(line)
            lines.append(line)
        _recompute(session, desk, bill, lines)
        record_event(session, desk, actor, "bill.create", "bill", bill.id, f"visit={visit.id}")
        session.flush()
        return _view(session, bill)


def _add_line(
    session: Session,
    desk: Desk,
    actor: Actor,
    bill: Bill,
    *,
    price_item_id: str | None,
    description: str,
    unit_price_minor: int,
    quantity: int,
) -> BillView:
    lines = _lines(session, bill.id)
    errors: dict[str, str] = {}
    if len(lines) >= MAX_LINES:
        errors[""] = f"A bill can have at most {MAX_LINES} lines."
    amount = unit_price_minor * quantity
    try:
        money.check_amount(amount, bill.currency, field="amount", label="The line amount")
    except ValidationError as exc:
        errors.update(exc.fields)
    else:
        _check_totals(
            sum(i.amount_minor for i in lines) + amount,
            bill.discount_minor,
            bill.currency,
            errors,
        )
    if errors:
        raise ValidationError(errors)
    line = BillItem(
        clinic_id=desk.clinic_id,
        bill_id=bill.id,
        position=max((i.position for i in lines), default=0) + 1,
        price_item_id=price_item_id,
        description=description,
        quantity=quantity,
        unit_price_minor=unit_price_minor,
        amount_minor=amount,
    )
    session.add(line)
    _recompute(session, desk, bill, [*lines, line])
    record_event(session, desk, actor, "bill.line.add", "bill", bill.id, f"line={line.id}")
    session.flush()
    return _view(session, bill)


def add_price_line(
    desk: Desk, actor: Actor, bill_id: str, price_item_id: str, quantity: int | str = 1
) -> BillView:
    """Add a price-list entry to a draft bill at its current price."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="change a bill")
        bill = _draft(session, desk, bill_id)
        errors: dict[str, str] = {}
        qty = _quantity(quantity, errors)
        item = session.get(PriceItem, price_item_id)
        if item is None or item.deleted or item.clinic_id != desk.clinic_id or not item.active:
            errors["price_item_id"] = "That service is not on the price list any more."
        elif item.currency != bill.currency:
            errors["price_item_id"] = "That service is priced in another currency."
        if errors:
            raise ValidationError(errors)
        assert item is not None
        return _add_line(
            session,
            desk,
            actor,
            bill,
            price_item_id=item.id,
            description=item.name,
            unit_price_minor=item.amount_minor,
            quantity=qty,
        )


def add_custom_line(
    desk: Desk,
    actor: Actor,
    bill_id: str,
    description: str,
    unit_price_minor: int,
    quantity: int | str = 1,
) -> BillView:
    """Add a line that is not on the price list (description and price typed in)."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="change a bill")
        bill = _draft(session, desk, bill_id)
        errors: dict[str, str] = {}
        text = check_text(description, "description", "The description", 200, errors)
        if "description" not in errors and not text.strip():
            errors["description"] = "Describe what is being charged."
        qty = _quantity(quantity, errors)
        try:
            money.check_amount(
                unit_price_minor, bill.currency, field="unit_price_minor", label="The price"
            )
        except ValidationError as exc:
            errors.update(exc.fields)
        if errors:
            raise ValidationError(errors)
        return _add_line(
            session,
            desk,
            actor,
            bill,
            price_item_id=None,
            description=text,
            unit_price_minor=unit_price_minor,
            quantity=qty,
        )


def remove_line(desk: Desk, actor: Actor, line_id: str) -> BillView:
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="change a bill")
        line = session.get(BillItem, line_id)
        if line is None or line.deleted or line.clinic_id != desk.clinic_id:
            raise NotFound("That bill line no longer exists.")
        bill = _draft(session, desk, line.bill_id)
        remaining = [i for i in _lines(session, bill.id) if i.id != line.id]
        if bill.discount_minor > sum(i.amount_minor for i in remaining):
            raise ValidationError(
                {"discount": "The discount would exceed the bill; lower the discount first."}
            )
        line.deleted = True
        _recompute(session, desk, bill, remaining)
        record_event(session, desk, actor, "bill.line.remove", "bill", bill.id, f"line={line.id}")
        session.flush()
        return _view(session, bill)


def set_discount(
    desk: Desk,
    actor: Actor,
    bill_id: str,
    *,
    amount_minor: int | None = None,
    percent_bp: int | None = None,
) -> BillView:
    """Discount a draft by an amount, or by a percentage of its current subtotal (basis
    points, rounded half up). Zero removes the discount. Never more than the subtotal."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="give a discount")
        bill = _draft(session, desk, bill_id)
        if (amount_minor is None) == (percent_bp is None):
            raise ValidationError({"discount": "Give the discount as an amount or a percentage."})
        lines = _lines(session, bill.id)
        subtotal = sum(i.amount_minor for i in lines)
        errors: dict[str, str] = {}
        discount = 0
        if percent_bp is not None:
            if isinstance(percent_bp, bool) or not isinstance(percent_bp, int):
                errors["discount"] = "The percentage must be a number."
            elif not 0 <= percent_bp <= money.BASIS_POINTS:
                errors["discount"] = "The percentage must be between 0 and 100."
            else:
                discount = money.percent_of(subtotal, percent_bp)
        else:
            assert amount_minor is not None
            try:
                discount = money.check_amount(
                    amount_minor, bill.currency, field="discount", label="The discount"
                )
            except ValidationError as exc:
                errors.update(exc.fields)
        if not errors:
            _check_totals(subtotal, discount, bill.currency, errors)
        if errors:
            raise ValidationError(errors)
        if discount != bill.discount_minor:
            bill.discount_minor = discount
            _recompute(session, desk, bill, lines)
            record_event(session, desk, actor, "bill.discount", "bill", bill.id)
        return _view(session, bill)


def issue_bill(desk: Desk, actor: Actor, bill_id: str) -> BillView:
    """Give the draft its invoice number and freeze it. Tax is taken at today's rate."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="issue a bill")
        bill = _draft(session, desk, bill_id)
        lines = _lines(session, bill.id)
        if not lines:
            raise ValidationError({"": "Add at least one line before issuing the bill."})
        _recompute(session, desk, bill, lines)
        bill.invoice_number = next_invoice_number(session, desk.desk_code)
        bill.desk_code = desk.desk_code  # the desk whose series the number belongs to
        bill.status = "paid" if bill.total_minor == 0 else "issued"
        bill.issued_at = desk.now.utcnow()
        record_event(
            session, desk, actor, "bill.issue", "bill", bill.id, f"invoice={bill.invoice_number}"
        )
        return _view(session, bill)


def discard_draft_bill(desk: Desk, actor: Actor, bill_id: str) -> None:
    """Throw away a draft (it never had a number, so no credit note is needed)."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="discard a bill")
        bill = _draft(session, desk, bill_id)
        bill.deleted = True
        for line in _lines(session, bill.id):
            line.deleted = True
        record_event(session, desk, actor, "bill.discard", "bill", bill.id)


def cancel_with_credit_note(desk: Desk, actor: Actor, bill_id: str, reason: str) -> BillView:
    """Cancel an issued bill: a credit note (own number, negative totals) offsets it and the
    original becomes void. Any money taken on it must be refunded first."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="cancel a bill")
        bill = _load_bill(session, desk, bill_id)
        if bill.credit_note_for:
            raise InvalidState("A credit note cannot itself be cancelled.")
        if bill.status == "draft":
            raise InvalidState("A draft has no invoice number; discard it instead.")
        if bill.status == "void":
            raise InvalidState("This bill is already cancelled.")
        errors: dict[str, str] = {}
        text = _reason(reason, errors)
        if errors:
            raise ValidationError(errors)
        paid = sum(p.amount_minor for p in _payments(session, bill.id))
        if paid:
            raise InvalidState(
                "Refund the money taken on this bill before cancelling it "
                f"({money.format_amount(paid, bill.currency)} paid)."
            )
        note = Bill(
            clinic_id=desk.clinic_id,
            visit_id=bill.visit_id,
            patient_id=bill.patient_id,
            desk_code=desk.desk_code,
            invoice_number=next_invoice_number(session, desk.desk_code),
            status="issued",
            currency=bill.currency,
            subtotal_minor=-bill.subtotal_minor,
            discount_minor=-bill.discount_minor,
            tax_minor=-bill.tax_minor,
            total_minor=-bill.total_minor,
            issued_at=desk.now.utcnow(),
            credit_note_for=bill.id,
            void_reason=text,
        )
        session.add(note)
        for line in _lines(session, bill.id):
            session.add(
                BillItem(
                    clinic_id=desk.clinic_id,
                    bill_id=note.id,
                    position=line.position,
                    price_item_id=line.price_item_id,
                    description=line.description,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price_minor,
                    amount_minor=-line.amount_minor,
                )
            )
        bill.status = "void"
        bill.void_reason = text
        record_event(
            session,
            desk,
            actor,
            "bill.credit_note",
            "bill",
            note.id,
            f"cancels={bill.id} invoice={note.invoice_number}",
        )
        session.flush()
        return _view(session, note)


def get_bill(desk: Desk, actor: Actor, bill_id: str) -> BillView:
    with desk.reading() as session:
        authorize(session, actor, *CASHIER_ROLES, action="open a bill")
        return _view(session, _load_bill(session, desk, bill_id))


def bills_for_visit(desk: Desk, actor: Actor, visit_id: str) -> list[BillView]:
    """Every bill and credit note of a visit, oldest first."""
    with desk.reading() as session:
        authorize(session, actor, *CASHIER_ROLES, action="open a bill")
        rows = session.scalars(
            select(Bill)
            .where(Bill.visit_id == visit_id, Bill.deleted.is_(False))
            .order_by(Bill.issued_at.is_(None), Bill.issued_at, Bill.id)
        ).all()
        return [_view(session, b) for b in rows]


@dataclass(frozen=True)
class AwaitingVisit:
    """A finished visit billing has not yet issued a bill for."""

    visit_id: str
    patient_id: str
    patient_name: str
    patient_number: str
    doctor_name: str
    token_label: str
    day: date
    finished_at: datetime | None
    draft_bill_id: str | None  # a bill started but not issued yet


def bills_awaiting(desk: Desk, actor: Actor | None = None) -> list[AwaitingVisit]:
    """Completed visits with no issued bill (a void bill counts as none), oldest first."""
    with desk.reading() as session:
        if actor is not None:
            authorize(session, actor, *CASHIER_ROLES, action="see visits waiting for billing")
        visits = session.scalars(
            select(Visit)
            .where(
                Visit.clinic_id == desk.clinic_id,
                Visit.deleted.is_(False),
                Visit.status == "completed",
            )
            .order_by(Visit.finished_at, Visit.arrived_at)
        ).all()
        if not visits:
            return []
        ids = [v.id for v in visits]
        bills = session.scalars(
            select(Bill).where(
                Bill.visit_id.in_(ids), Bill.deleted.is_(False), Bill.credit_note_for.is_(None)
            )
        ).all()
        billed = {b.visit_id for b in bills if b.status not in ("draft", "void")}
        drafts = {b.visit_id: b.id for b in bills if b.status == "draft"}
        waiting = [v for v in visits if v.id not in billed]
        patients = {
            p.id: p
            for p in session.scalars(
                select(Patient).where(Patient.id.in_({v.patient_id for v in waiting}))
            )
        }
        doctors = {
            u.id: u.full_name
            for u in session.scalars(
                select(User).where(User.id.in_({v.doctor_id for v in waiting}))
            )
        }
        result = []
        for visit in waiting:
            patient = patients.get(visit.patient_id)
            result.append(
                AwaitingVisit(
                    visit_id=visit.id,
                    patient_id=visit.patient_id,
                    patient_name=patient.full_name if patient else "",
                    patient_number=patient.patient_number if patient else "",
                    doctor_name=doctors.get(visit.doctor_id, ""),
                    token_label=visit.token_label,
                    day=visit.day,
                    finished_at=visit.finished_at,
                    draft_bill_id=drafts.get(visit.id),
                )
            )
        return result


# --- payments -----------------------------------------------------------------------------


def _payable(session: Session, desk: Desk, bill_id: str) -> tuple[Bill, list[Payment], int]:
    """The bill, its payments and the balance due; refuses bills that cannot take money."""
    bill = _load_bill(session, desk, bill_id)
    if bill.credit_note_for:
        raise InvalidState("A credit note cannot be paid.")
    if bill.status == "void":
        raise InvalidState("This bill has been cancelled; it cannot be paid.")
    if bill.status == "draft":
        raise InvalidState("Issue the bill before taking payment.")
    payments = _payments(session, bill.id)
    balance = bill.total_minor - sum(p.amount_minor for p in payments)
    if balance <= 0:
        raise InvalidState("This bill is already paid in full.")
    return bill, payments, balance


def _add_payment(
    session: Session,
    desk: Desk,
    actor: Actor,
    bill: Bill,
    payments: list[Payment],
    *,
    method: str,
    amount: int,
    reference: str = "",
    refund_of: str | None = None,
    reason: str = "",
) -> Payment:
    payment = Payment(
        clinic_id=desk.clinic_id,
        bill_id=bill.id,
        method=method,
        amount_minor=amount,
        currency=bill.currency,
        received_at=desk.now.utcnow(),
        received_by=actor.user_id,
        desk_code=desk.desk_code,
        reference=reference,
        refund_of=refund_of,
        reason=reason,
    )
    session.add(payment)
    bill.status = derive_status(bill, [*payments, payment])
    action = "payment.refund" if amount < 0 else "payment.record"
    record_event(
        session, desk, actor, action, "payment", payment.id, f"bill={bill.id} method={method}"
    )
    return payment


def _check_applied(amount: object, balance: int, currency: str, field: str) -> int:
    applied = money.check_amount(
        amount,  # type: ignore[arg-type]
        currency,
        field=field,
        label="The amount",
        allow_zero=False,
    )
    if applied > balance:
        due = money.format_amount(balance, currency)
        raise ValidationError({field: f"That is more than the balance due ({due})."})
    return applied


def record_cash_payment(
    desk: Desk,
    actor: Actor,
    bill_id: str,
    tendered_minor: int,
    amount_minor: int | None = None,
) -> PaymentResult:
    """Cash handed over: ``amount_minor`` (default: the whole balance, or all of the cash
    when it is less) is applied to the bill and the rest comes back as change."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="take a payment")
        bill, payments, balance = _payable(session, desk, bill_id)
        tendered = money.check_amount(
            tendered_minor,
            bill.currency,
            field="tendered",
            label="The cash received",
            allow_zero=False,
        )
        if amount_minor is None:
            applied = min(tendered, balance)
        else:
            applied = _check_applied(amount_minor, balance, bill.currency, "amount")
            if tendered < applied:
                raise ValidationError(
                    {"tendered": "The cash received is less than the amount to pay."}
                )
        payment = _add_payment(session, desk, actor, bill, payments, method="cash", amount=applied)
        session.flush()
        return PaymentResult(_payment_view(payment), tendered - applied, _view(session, bill))


def record_card_payment(
    desk: Desk, actor: Actor, bill_id: str, amount_minor: int, reference: str
) -> PaymentResult:
    """A payment on the card terminal; the slip's reference is required for reconciliation."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="take a payment")
        bill, payments, balance = _payable(session, desk, bill_id)
        errors: dict[str, str] = {}
        ref = check_text(reference, "reference", "The terminal reference", 120, errors)
        if "reference" not in errors and not ref.strip():
            errors["reference"] = "Enter the reference printed on the card terminal slip."
        try:
            applied = _check_applied(amount_minor, balance, bill.currency, "amount")
        except ValidationError as exc:
            errors.update(exc.fields)
        if errors:
            raise ValidationError(errors)
        payment = _add_payment(
            session,
            desk,
            actor,
            bill,
            payments,
            method="card",
            amount=applied,
            reference=ref.strip(),
        )
        session.flush()
        return PaymentResult(_payment_view(payment), 0, _view(session, bill))


def record_confirmed_online_payment(
    desk: Desk,
    actor: Actor,
    bill_id: str,
    amount_minor: int,
    currency: str,
    reference: str,
) -> PaymentResult:
    """Record a Stripe payment the central server has already confirmed (never call this
    from what the browser says). Idempotent on ``reference`` (the Checkout Session or
    PaymentIntent id): a second confirmation returns the payment already recorded."""
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="take a payment")
        ref = (reference or "").strip()
        if not ref or len(ref) > 120:
            raise ValidationError({"reference": "The Stripe reference is missing."})
        bill = _load_bill(session, desk, bill_id)
        already = session.scalars(
            select(Payment).where(
                Payment.bill_id == bill.id,
                Payment.method == "stripe",
                Payment.reference == ref,
                Payment.amount_minor > 0,
            )
        ).first()
        if already is not None:
            return PaymentResult(_payment_view(already), 0, _view(session, bill))
        bill, payments, balance = _payable(session, desk, bill_id)
        if money.check_currency(currency) != bill.currency:
            raise ValidationError({"currency": "The payment is in another currency than the bill."})
        applied = _check_applied(amount_minor, balance, bill.currency, "amount")
        payment = _add_payment(
            session, desk, actor, bill, payments, method="stripe", amount=applied, reference=ref
        )
        session.flush()
        return PaymentResult(_payment_view(payment), 0, _view(session, bill))


def _refund(
    desk: Desk,
    actor: Actor,
    payment_id: str,
    amount_minor: int,
    reason: str,
    *,
    online: bool,
    reference: str = "",
) -> PaymentResult:
    with desk.transaction(actor) as session:
        authorize(session, actor, *CASHIER_ROLES, action="refund a payment")
        original = session.get(Payment, payment_id)
        if original is None or original.deleted or original.clinic_id != desk.clinic_id:
            raise NotFound("That payment no longer exists.")
        if original.amount_minor <= 0:
            raise InvalidState("A refund cannot itself be refunded.")
        if (original.method == "stripe") != online:
            raise InvalidState(
                "Online payments are refunded through Stripe by the server."
                if not online
                else "Only an online payment is refunded through Stripe."
            )
        bill = _load_bill(session, desk, original.bill_id)
        payments = _payments(session, bill.id)
        refunded = -sum(p.amount_minor for p in payments if p.refund_of == original.id)
        left = original.amount_minor - refunded
        net_paid = sum(p.amount_minor for p in payments)
        errors: dict[str, str] = {}
        text = _reason(reason, errors)
        try:
            amount = money.check_amount(
                amount_minor, bill.currency, field="amount", label="The refund", allow_zero=False
            )
        except ValidationError as exc:
            errors.update(exc.fields)
        else:
            limit = min(left, net_paid)
            if amount > limit:
                errors["amount"] = (
                    "The refund is more than what was paid "
                    f"(at most {money.format_amount(max(limit, 0), bill.currency)} "
                    "can be refunded on this payment)."
                )
        if errors:
            raise ValidationError(errors)
        payment = _add_payment(
            session,
            desk,
            actor,
            bill,
            payments,
            method=original.method,
            amount=-amount,
            reference=reference,
            refund_of=original.id,
            reason=text,
        )
        session.flush()
        return PaymentResult(_payment_view(payment), 0, _view(session, bill))


def refund_payment(
    desk: Desk, actor: Actor, payment_id: str, amount_minor: int, reason: str
) -> PaymentResult:
    """Give money back on a cash or card payment: a negative payment with its reason."""
    return _refund(desk, actor, payment_id, amount_minor, reason, online=False)


def record_confirmed_online_refund(
    desk: Desk, actor: Actor, payment_id: str, amount_minor: int, reason: str, reference: str
) -> PaymentResult:
    """Record a Stripe refund the central server has made and confirmed."""
    return _refund(
        desk, actor, payment_id, amount_minor, reason, online=True, reference=reference.strip()
    )


# --- documents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptLine:
    description: str
    quantity: int
    unit_price_minor: int
    amount_minor: int


@dataclass(frozen=True)
class ReceiptPayment:
    method: str
    amount_minor: int
    received_at: datetime  # in the clinic's time zone
    reference: str
    is_refund: bool
    reason: str


@dataclass(frozen=True)
class ReceiptDocument:
    """What a printed receipt (or credit note) shows. Amounts in minor units of ``currency``;
    the printing layer formats them with :func:`money.format_amount`."""

    clinic_name: str
    clinic_address: str
    clinic_phone: str
    title: str  # "Receipt", "Invoice" or "Credit note"
    invoice_number: str
    cancels_invoice: str  # for a credit note: the number it cancels
    issued_at: datetime | None  # in the clinic's time zone
    patient_name: str
    patient_number: str
    doctor_name: str
    currency: str
    lines: list[ReceiptLine]
    subtotal_minor: int
    discount_minor: int
    tax_rate_bp: int
    tax_minor: int
    total_minor: int
    payments: list[ReceiptPayment]
    paid_minor: int
    balance_minor: int
    status: str
    printed_by: str


def receipt_document(desk: Desk, bill_id: str, actor: Actor | None = None) -> ReceiptDocument:
    """The printable receipt of an issued bill (or credit note); with ``actor`` it is audited."""
    with desk.transaction(actor) as session:
        if actor is not None:
            authorize(session, actor, *CASHIER_ROLES, action="print a receipt")
        bill = _load_bill(session, desk, bill_id)
        if bill.status == "draft":
            raise InvalidState("Issue the bill before printing it.")
        settings = clinic_settings(session, desk)
        zone = clinic_zone(settings)
        patient = session.get(Patient, bill.patient_id)
        visit = session.get(Visit, bill.visit_id) if bill.visit_id else None
        doctor = session.get(User, visit.doctor_id) if visit else None
        cancelled = session.get(Bill, bill.credit_note_for) if bill.credit_note_for else None
        payments = _payments(session, bill.id)
        paid = sum(p.amount_minor for p in payments)
        view = _view(session, bill)
        if bill.credit_note_for:
            title = "Credit note"
        elif paid > 0:
            title = "Receipt"
        else:
            title = "Invoice"
        if actor is not None:
            record_event(session, desk, actor, "bill.print", "bill", bill.id)
        taxable = bill.subtotal_minor - bill.discount_minor
        rate = _tax_rate(session, desk)
        if taxable and bill.tax_minor != money.percent_of(taxable, rate):
            # the clinic's rate changed since: show the rate this bill was taxed at
            rate = money.round_half_up_div(abs(bill.tax_minor) * money.BASIS_POINTS, abs(taxable))
        return ReceiptDocument(
            clinic_name=settings.name if settings else "",
            clinic_address=settings.address if settings else "",
            clinic_phone=settings.phone if settings else "",
            title=title,
            invoice_number=bill.invoice_number or "",
            cancels_invoice=(cancelled.invoice_number or "") if cancelled else "",
            issued_at=bill.issued_at.astimezone(zone) if bill.issued_at else None,
            patient_name=patient.full_name if patient else "",
            patient_number=patient.patient_number if patient else "",
            doctor_name=doctor.full_name if doctor else "",
            currency=bill.currency,
            lines=[
                ReceiptLine(
                    line.description, line.quantity, line.unit_price_minor, line.amount_minor
                )
                for line in view.lines
            ],
            subtotal_minor=bill.subtotal_minor,
            discount_minor=bill.discount_minor,
            tax_rate_bp=rate,
            tax_minor=bill.tax_minor,
            total_minor=bill.total_minor,
            payments=[
                ReceiptPayment(
                    method=p.method,
                    amount_minor=p.amount_minor,
                    received_at=p.received_at.astimezone(zone),
                    reference=p.reference,
                    is_refund=p.amount_minor < 0,
                    reason=p.reason,
                )
                for p in payments
            ],
            paid_minor=paid,
            balance_minor=view.balance_minor,
            status=bill.status,
            printed_by=actor.full_name if actor else "",
        )


# --- day end ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionLine:
    """Money in and out for one payment method or one cashier."""

    key: str  # method name, or user id
    label: str  # "Cash", "Card terminal", "Stripe", or the cashier's name
    payments: int
    received_minor: int
    refunds: int
    refunded_minor: int  # a positive number: money given back

    @property
    def net_minor(self) -> int:
        return self.received_minor - self.refunded_minor


@dataclass(frozen=True)
class CollectionSummary:
    """Day-end (or any date range) collection report, in the clinic's time zone."""

    clinic_name: str
    first_day: date
    last_day: date
    timezone: str
    currency: str
    by_method: list[CollectionLine]
    by_user: list[CollectionLine]
    received_minor: int
    refunded_minor: int
    net_minor: int
    bills_issued: int
    invoiced_minor: int  # totals of bills issued in the range (credit notes subtract)
    credit_notes: int
    generated_at: datetime
    generated_by: str


_METHOD_LABELS = {"cash": "Cash", "card": "Card terminal", "stripe": "Stripe (online)"}


def _collect(rows: list[Payment], key: str, labels: dict[str, str]) -> list[CollectionLine]:
    groups: dict[str, list[Payment]] = {}
    for payment in rows:
        groups.setdefault(str(getattr(payment, key)), []).append(payment)
    lines = []
    for name, payments in groups.items():
        incoming = [p.amount_minor for p in payments if p.amount_minor > 0]
        outgoing = [-p.amount_minor for p in payments if p.amount_minor < 0]
        lines.append(
            CollectionLine(
                key=name,
                label=labels.get(name, name),
                payments=len(incoming),
                received_minor=sum(incoming),
                refunds=len(outgoing),
                refunded_minor=sum(outgoing),
            )
        )
    return sorted(lines, key=lambda line: line.label.casefold())


def day_end_summary(
    desk: Desk, actor: Actor, first_day: date, last_day: date | None = None
) -> CollectionSummary:
    """Money received and refunded from ``first_day`` to ``last_day`` (inclusive, clinic
    dates in the clinic's time zone), by method and by cashier, with bills issued."""
    last = last_day or first_day
    with desk.reading() as session:
        authorize(session, actor, *CASHIER_ROLES, action="see the collection report")
        if not isinstance(first_day, date) or not isinstance(last, date):
            raise ValidationError({"first_day": "Choose the dates of the report."})
        if last < first_day:
            raise ValidationError({"last_day": "The last day is before the first day."})
        if last - first_day > timedelta(days=366):
            raise ValidationError({"last_day": "A report covers at most one year."})
        settings = clinic_settings(session, desk)
        zone = clinic_zone(settings)
        start = datetime.combine(first_day, time.min, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC)
        rows = list(
            session.scalars(
                select(Payment).where(
                    Payment.clinic_id == desk.clinic_id,
                    Payment.deleted.is_(False),
                    Payment.received_at >= start,
                    Payment.received_at < end,
                )
            )
        )
        users = {
            u.id: u.full_name
            for u in session.scalars(select(User).where(User.id.in_({p.received_by for p in rows})))
        }
        bills = list(
            session.scalars(
                select(Bill).where(
                    Bill.clinic_id == desk.clinic_id,
                    Bill.deleted.is_(False),
                    Bill.issued_at >= start,
                    Bill.issued_at < end,
                )
            )
        )
        received = sum(p.amount_minor for p in rows if p.amount_minor > 0)
        refunded = -sum(p.amount_minor for p in rows if p.amount_minor < 0)
        return CollectionSummary(
            clinic_name=settings.name if settings else "",
            first_day=first_day,
            last_day=last,
            timezone=str(zone.key),
            currency=_currency(session, desk),
            by_method=_collect(rows, "method", _METHOD_LABELS),
            by_user=_collect(rows, "received_by", users),
            received_minor=received,
            refunded_minor=refunded,
            net_minor=received - refunded,
            bills_issued=sum(1 for b in bills if not b.credit_note_for),
            invoiced_minor=sum(b.total_minor for b in bills),
            credit_notes=sum(1 for b in bills if b.credit_note_for),
            generated_at=desk.now.utcnow().astimezone(zone),
            generated_by=actor.full_name,
        )
