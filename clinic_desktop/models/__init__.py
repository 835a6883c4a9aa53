"""The schema desks and the server share (SQLAlchemy 2.x ORM; no Qt here)."""

from clinic_desktop.models.audit import AuditEvent, ConflictRecord
from clinic_desktop.models.base import Base, LocalBase, SyncMixin, new_id
from clinic_desktop.models.billing import Bill, BillItem, Payment, PriceItem
from clinic_desktop.models.clinic import ROLES, ClinicSettings, User, Workstation
from clinic_desktop.models.local import DeskCounter, OutboxEntry, SyncProblem, SyncState
from clinic_desktop.models.patient import Patient
from clinic_desktop.models.prescription import Medicine, Prescription, PrescriptionItem
from clinic_desktop.models.visit import Visit

# Every synced entity by table name: the names the sync protocol speaks.
SYNCED_ENTITIES: dict[str, type[SyncMixin]] = {
    cls.__tablename__: cls
    for cls in (
        ClinicSettings,
        Workstation,
        User,
        Patient,
        Visit,
        Medicine,
        Prescription,
        PrescriptionItem,
        PriceItem,
        Bill,
        BillItem,
        Payment,
        AuditEvent,
        ConflictRecord,
    )
}

__all__ = [
    "ROLES",
    "SYNCED_ENTITIES",
    "AuditEvent",
    "Base",
    "Bill",
    "BillItem",
    "ClinicSettings",
    "ConflictRecord",
    "DeskCounter",
    "LocalBase",
    "Medicine",
    "OutboxEntry",
    "Patient",
    "Payment",
    "Prescription",
    "PrescriptionItem",
    "PriceItem",
    "SyncMixin",
    "SyncProblem",
    "SyncState",
    "User",
    "Visit",
    "Workstation",
    "new_id",
]
