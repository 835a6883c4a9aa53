"""Who may write what (per entity and operation), and the entity rules a write must obey.

These mirror the desktop services' role checks: the server never trusts that a desk ran
them, because a desk can be old, buggy or tampered with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clinic_desktop.models import ROLES, Bill, Prescription
from clinic_desktop.models.billing import BILL_STATUSES, PAYMENT_METHODS
from clinic_desktop.models.patient import BLOOD_GROUPS, SEXES
from clinic_desktop.models.visit import VISIT_STATUSES

ADMIN, RECEPTION, DOCTOR, BILLING = "admin", "receptionist", "doctor", "billing"

# Visit fields only the consulting doctor (or an admin) records.
VISIT_DOCTOR_ONLY = frozenset({"examination", "diagnosis_codes", "advice", "follow_up_date"})
# Visit fields that identify the token; a doctor never changes them.
VISIT_FIXED_FOR_DOCTOR = frozenset(
    {"patient_id", "doctor_id", "day", "desk_code", "token_seq", "token_label"}
)
# Bill fields frozen once the bill is no longer a draft.
BILL_FROZEN = frozenset(
    {
        "patient_id",
        "visit_id",
        "desk_code",
        "invoice_number",
        "currency",
        "subtotal_minor",
        "discount_minor",
        "tax_minor",
        "total_minor",
        "credit_note_for",
    }
)
OWN_PASSWORD_FIELDS = frozenset({"password_hash", "must_change_password"})
# Desks record failed sign-ins on the user row (their own lock-out); any desk may sync that.
LOCKOUT_FIELDS = frozenset({"failed_attempts", "locked_until"})
SIGNED_FROZEN = "This prescription is signed and can no longer change; amend it as a new version."
CONFLICT_REVIEW_FIELDS = frozenset({"resolution", "note", "deleted"})

ENTITY_LABELS = {
    "clinic_settings": "clinic settings",
    "workstation": "workstations",
    "user_account": "user accounts",
    "patient": "patients",
    "visit": "visits",
    "medicine": "the medicine catalogue",
    "prescription": "prescriptions",
    "prescription_item": "prescriptions",
    "price_item": "the price list",
    "bill": "bills",
    "bill_item": "bills",
    "payment": "payments",
    "audit_event": "the audit log",
    "conflict_record": "sync conflicts",
}


@dataclass(frozen=True)
class Actor:
    """The person a mutation is attributed to, with the roles the server has for them now."""

    user_id: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


Lookup = Callable[[type[Any], str | None], Any]


def _need(actor: Actor, entity: str, *roles: str) -> str | None:
    if actor.has(*roles):
        return None
    names = " or ".join(roles)
    return f"Only a user with the {names} role can change {ENTITY_LABELS.get(entity, entity)}."


def permission_problem(
    entity: str,
    op: str,
    actor: Actor,
    row: Any | None,
    attempted: Mapping[str, Any],
    after: Mapping[str, Any],
    lookup: Lookup,
) -> str | None:
    """Why ``actor`` may not make this change, or ``None`` when the role allows it.

    ``row`` is the server's row before the change (``None`` for an insert), ``attempted`` the
    fields that would change, ``after`` the row's values as they would be afterwards.
    """
    if entity in ("clinic_settings", "workstation", "price_item"):
        return _need(actor, entity, ADMIN)
    if entity == "user_account":
        if actor.has(ADMIN):
            return None
        changed = set(attempted)
        if op == "update" and row is not None:
            if row.id == actor.user_id and changed <= OWN_PASSWORD_FIELDS:
                return None
            if changed <= LOCKOUT_FIELDS:
                return None
        return _need(actor, entity, ADMIN)
    if entity == "patient":
        return _need(actor, entity, RECEPTION, ADMIN)
    if entity == "visit":
        if actor.has(ADMIN):
            return None
        if op == "insert":
            return _need(actor, entity, RECEPTION, ADMIN)
        changed = set(attempted)
        if actor.has(RECEPTION) and not changed & VISIT_DOCTOR_ONLY:
            return None
        if (
            actor.has(DOCTOR)
            and row is not None
            and row.doctor_id == actor.user_id
            and not changed & VISIT_FIXED_FOR_DOCTOR
        ):
            return None
        if actor.has(DOCTOR):
            return "A doctor can only record the consultation of their own patients' visits."
        if actor.has(RECEPTION):
            return "Only the consulting doctor can record the examination, diagnosis and advice."
        return _need(actor, entity, RECEPTION, DOCTOR, ADMIN)
    if entity == "medicine":
        return _need(actor, entity, ADMIN, DOCTOR)
    if entity == "prescription":
        problem = _need(actor, entity, DOCTOR)
        if problem:
            return problem
        owners = {after.get("doctor_id")} | ({row.doctor_id} if row is not None else set())
        if owners != {actor.user_id}:
            return "A doctor can only write their own prescriptions."
        return None
    if entity == "prescription_item":
        problem = _need(actor, entity, DOCTOR)
        if problem:
            return problem
        parent = lookup(Prescription, after.get("prescription_id"))
        if parent is None or parent.doctor_id != actor.user_id:
            return "A doctor can only write their own prescriptions."
        return None
    if entity == "payment" and after.get("method") == "stripe":
        # Online payments are recorded by the server when Stripe confirms them (once, by
        # confirm or webhook); a desk-made copy would count the same money twice.
        return "Online (Stripe) payments are recorded by the server, not by a workstation."
    if entity in ("bill", "bill_item", "payment"):
        return _need(actor, entity, BILLING, ADMIN)
    if entity == "audit_event":
        if after.get("actor_id") not in (None, actor.user_id):
            return "An audit event can only be recorded by the user it names."
        return None
    if entity == "conflict_record":
        if op == "insert":
            return "Conflict records are made by the server only."
        problem = _need(actor, entity, ADMIN)
        if problem:
            return problem
        if not set(attempted) <= CONFLICT_REVIEW_FIELDS:
            return "An admin can only set the resolution and note of a conflict record."
        return None
    return f"Unknown entity {entity!r}."


def frozen_problem(
    entity: str,
    op: str,
    row: Any | None,
    attempted: Mapping[str, Any],
    after: Mapping[str, Any],
    lookup: Lookup,
    stamp_origin: Callable[[Any, str], str | None],
    device_id: str,
) -> str | None:
    """Signed prescriptions and issued bills (with their items) do not change.

    An item may still arrive for a signed prescription or an issued bill when the same
    workstation signed/issued it: one desk transaction creates the items and signs, and its
    outbox may list the parent first.
    """
    if entity == "prescription" and row is not None and row.status == "signed":
        return SIGNED_FROZEN
    if entity == "prescription_item":
        parent = lookup(Prescription, after.get("prescription_id"))
        if (
            parent is not None
            and parent.status == "signed"
            and (op == "update" or stamp_origin(parent, "status") != device_id)
        ):
            return SIGNED_FROZEN
    if entity == "bill" and row is not None and row.status != "draft":
        if attempted.get("status") == "draft":
            return "An issued bill cannot go back to draft."
        frozen = sorted(set(attempted) & BILL_FROZEN)
        if frozen:
            return (
                f"Invoice {row.invoice_number or ''} is issued; its amounts are frozen "
                "(cancel it with a credit note instead)."
            )
    if entity == "bill_item":
        bill = lookup(Bill, after.get("bill_id"))
        if (
            bill is not None
            and bill.status != "draft"
            and (op == "update" or stamp_origin(bill, "status") != device_id)
        ):
            return (
                f"Invoice {bill.invoice_number or ''} is issued; its items are frozen "
                "(cancel it with a credit note instead)."
            )
    return None


# Closed vocabularies: a value outside them would confuse every desk that pulls the row.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("visit", "status"): VISIT_STATUSES,
    ("bill", "status"): BILL_STATUSES,
    ("payment", "method"): PAYMENT_METHODS,
    ("patient", "sex"): SEXES,
    ("patient", "blood_group"): BLOOD_GROUPS,
    ("prescription", "status"): ("draft", "signed"),
    ("conflict_record", "resolution"): ("open", "kept", "restored"),
}


def value_problem(entity: str, values: Mapping[str, Any]) -> str | None:
    """Why a value is outside its field's closed vocabulary, or ``None``."""
    for (name_entity, name), allowed in CHOICES.items():
        if name_entity == entity and name in values and values[name] not in allowed:
            return f"Field {name!r} must be one of: {', '.join(a or '(empty)' for a in allowed)}."
    if entity == "user_account" and "roles" in values:
        roles = values["roles"] or []
        if not all(isinstance(role, str) and role in ROLES for role in roles):
            return f"Roles must be among: {', '.join(ROLES)}."
    return None
