"""Today's queue: tokens, priorities, re-ordering, the forward-only state machine, roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clinic_desktop.models import AuditEvent, OutboxEntry, Visit
from clinic_desktop.services import passwords, patients, queue, users
from clinic_desktop.services.context import Actor, Clock, Desk
from clinic_desktop.services.errors import InvalidState, NotFound, PermissionDenied, ValidationError
from clinic_desktop.services.patients import PatientDraft
from clinic_desktop.services.users import SetupResult

PASSWORD = "queue tests pass 1"


class MovableClock(Clock):
    def __init__(self) -> None:
        self.at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def utcnow(self) -> datetime:
        self.at += timedelta(seconds=1)  # every action happens a moment after the last
        return self.at


@dataclass
class Clinic:
    desk: Desk
    clock: MovableClock
    admin: Actor
    reception: Actor
    billing: Actor
    dr_a: Actor
    dr_b: Actor
    patients: list[str]


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def clinic(desk_setup: SetupResult) -> Clinic:
    """The shared real store (encrypted, migrated, desk code "A"), two doctors, six patients."""
    clock = MovableClock()
    desk, admin = desk_setup.desk, desk_setup.admin
    desk.now = clock

    def person(name: str, full_name: str, *roles: str) -> Actor:
        return users.actor_for(
            users.create_user(
                desk, admin, username=name, full_name=full_name, roles=roles, password=PASSWORD
            )
        )

    reception = person("rita", "Rita Front", "receptionist")
    people = [
        patients.register(
            desk, reception, PatientDraft(full_name=f"Patient {n}"), confirm_not_duplicate=True
        ).id
        for n in range(6)
    ]
    return Clinic(
        desk=desk,
        clock=clock,
        admin=admin,
        reception=reception,
        billing=person("bill", "Bill Cash", "billing"),
        dr_a=person("dra", "Dr Anand", "doctor"),
        dr_b=person("drb", "Dr Bose", "doctor", "billing"),
        patients=people,
    )


def issue(c: Clinic, n: int, doctor: Actor | None = None, priority: int = 0) -> Visit:
    return queue.issue_token(
        c.desk, c.reception, c.patients[n], (doctor or c.dr_a).user_id, priority=priority
    )


def labels(entries: list[queue.QueueEntry]) -> list[str]:
    return [e.token_label for e in entries]


def audit_count(desk: Desk) -> int:
    with desk.reading() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


# --- issuing ----------------------------------------------------------------------------------


def test_tokens_carry_the_desk_code_and_count_per_desk_per_day(clinic: Clinic) -> None:
    first = issue(clinic, 0)
    second = issue(clinic, 1, clinic.dr_b)
    assert (first.token_label, second.token_label) == ("A-001", "A-002")
    assert first.day == date(2026, 3, 2)
    assert first.status == "waiting"
    with clinic.desk.reading() as session:
        outbox = session.scalars(select(OutboxEntry).where(OutboxEntry.row_id == first.id)).one()
        assert (outbox.entity, outbox.op) == ("visit", "insert")
        event = session.scalars(select(AuditEvent).where(AuditEvent.entity_id == first.id)).one()
        assert (event.action, event.detail) == ("visit.issue", "priority=0")
    clinic.clock.at += timedelta(days=1)
    assert issue(clinic, 2).token_label == "A-001"  # a new day starts again at 001


def test_today_is_the_clinics_local_date(clinic: Clinic) -> None:
    from clinic_desktop.models import ClinicSettings

    with clinic.desk.transaction(clinic.admin) as session:
        session.scalars(select(ClinicSettings)).one().timezone = "Asia/Kolkata"
    clinic.clock.at = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 01:30 on 3 March in India
    assert issue(clinic, 0).day == date(2026, 3, 3)


def test_a_second_open_token_for_the_same_patient_and_doctor_is_refused(clinic: Clinic) -> None:
    first = issue(clinic, 0)
    before = audit_count(clinic.desk)
    with pytest.raises(InvalidState, match=r"Patient 0 already has token A-001 \(waiting\)"):
        issue(clinic, 0)
    assert audit_count(clinic.desk) == before
    # another doctor is fine, and so is a new token once the first one is finished
    issue(clinic, 0, clinic.dr_b)
    queue.cancel(clinic.desk, clinic.reception, first.id)
    assert issue(clinic, 0).token_label == "A-003"


def test_issuing_checks_role_patient_doctor_and_priority(clinic: Clinic) -> None:
    for actor in (clinic.dr_a, clinic.billing):
        with pytest.raises(PermissionDenied):
            queue.issue_token(clinic.desk, actor, clinic.patients[0], clinic.dr_a.user_id)
    with pytest.raises(NotFound, match="patient"):
        queue.issue_token(clinic.desk, clinic.reception, "missing", clinic.dr_a.user_id)
    with pytest.raises(NotFound, match="doctor"):
        queue.issue_token(clinic.desk, clinic.reception, clinic.patients[0], clinic.billing.user_id)
    with pytest.raises(ValidationError) as info:
        queue.issue_token(
            clinic.desk, clinic.reception, clinic.patients[0], clinic.dr_a.user_id, priority=7
        )
    assert "priority" in info.value.fields
    users.set_disabled(clinic.desk, clinic.admin, clinic.dr_a.user_id, True)
    with pytest.raises(InvalidState, match="disabled"):
        issue(clinic, 0)
    users.set_disabled(clinic.desk, clinic.admin, clinic.reception.user_id, True)
    with pytest.raises(PermissionDenied, match="disabled"):
        issue(clinic, 0, clinic.dr_b)
    with clinic.desk.reading() as session:
        assert session.scalar(select(func.count()).select_from(Visit)) == 0


def test_merged_patients_cannot_get_tokens(clinic: Clinic) -> None:
    patients.merge(clinic.desk, clinic.reception, clinic.patients[0], clinic.patients[1])
    with pytest.raises(InvalidState, match="merged"):
        issue(clinic, 1)


def test_complaint_with_html_and_sql_is_kept_verbatim(clinic: Clinic) -> None:
    odd = "<b>cough</b>'); DROP TABLE visit;--"
    visit = queue.issue_token(
        clinic.desk, clinic.reception, clinic.patients[0], clinic.dr_a.user_id, complaint=odd
    )
    with clinic.desk.reading() as session:
        assert session.get(Visit, visit.id).complaint == odd  # type: ignore[union-attr]


# --- ordering ---------------------------------------------------------------------------------


def test_queue_order_is_priority_then_position_then_arrival(clinic: Clinic) -> None:
    issue(clinic, 0)  # A-001 normal
    issue(clinic, 1, priority=1)  # A-002 priority
    issue(clinic, 2)  # A-003 normal
    issue(clinic, 3, priority=2)  # A-004 emergency
    issue(clinic, 4, clinic.dr_b)  # other doctor's queue
    order = queue.doctor_queue(clinic.desk, clinic.dr_a.user_id)
    assert labels(order) == ["A-004", "A-002", "A-001", "A-003"]
    assert order[0].patient_name == "Patient 3"
    assert labels(queue.doctor_queue(clinic.desk, clinic.dr_b.user_id)) == ["A-005"]


def test_reorder_within_a_priority_group(clinic: Clinic) -> None:
    a, b, c = issue(clinic, 0), issue(clinic, 1), issue(clinic, 2)
    urgent = issue(clinic, 3, priority=1)
    queue.move(clinic.desk, clinic.reception, c.id, -2)
    assert labels(queue.doctor_queue(clinic.desk, clinic.dr_a.user_id)) == [
        "A-004",
        "A-003",
        "A-001",
        "A-002",
    ]
    queue.move_to(clinic.desk, clinic.reception, c.id, 99)  # clamps to the end
    assert labels(queue.doctor_queue(clinic.desk, clinic.dr_a.user_id))[1:] == [
        "A-001",
        "A-002",
        "A-003",
    ]
    # a normal token never jumps above a priority one by moving
    queue.move_to(clinic.desk, clinic.reception, a.id, 0)
    assert labels(queue.doctor_queue(clinic.desk, clinic.dr_a.user_id))[0] == "A-004"
    queue.set_priority(clinic.desk, clinic.reception, b.id, 2)
    assert labels(queue.doctor_queue(clinic.desk, clinic.dr_a.user_id))[0] == "A-002"
    with pytest.raises(PermissionDenied):
        queue.move(clinic.desk, clinic.dr_a, urgent.id, 1)
    with clinic.desk.reading() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.action.in_(["visit.reorder", "visit.priority"])
            )
        ).all()
        assert sorted(actions) == ["visit.priority", "visit.reorder", "visit.reorder"]


def test_only_waiting_tokens_move(clinic: Clinic) -> None:
    visit = issue(clinic, 0)
    queue.call(clinic.desk, clinic.dr_a, visit.id)
    with pytest.raises(InvalidState, match="no longer waiting"):
        queue.move(clinic.desk, clinic.reception, visit.id, 1)
    with pytest.raises(InvalidState, match="no longer waiting"):
        queue.set_priority(clinic.desk, clinic.reception, visit.id, 1)


# --- the state machine ------------------------------------------------------------------------


def test_a_visit_walks_forward_through_its_states(clinic: Clinic) -> None:
    visit = issue(clinic, 0)
    called = queue.call(clinic.desk, clinic.dr_a, visit.id)
    assert called.status == "called"
    assert called.called_at is not None
    started = queue.start(clinic.desk, clinic.dr_a, visit.id)
    assert started.status == "in_consultation"
    assert started.started_at is not None
    done = queue.complete(clinic.desk, clinic.dr_a, visit.id)
    assert done.status == "completed"
    assert done.finished_at is not None
    with clinic.desk.reading() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity_id == visit.id)
            .order_by(AuditEvent.seq)
        ).all()
        assert actions == [
            "visit.issue",
            "visit.called",
            "visit.in_consultation",
            "visit.completed",
        ]
        updates = session.scalars(
            select(OutboxEntry).where(OutboxEntry.row_id == visit.id, OutboxEntry.op == "update")
        ).all()
        assert [u.fields["status"] for u in updates] == ["called", "in_consultation", "completed"]


@pytest.mark.parametrize(
    ("path", "bad_step", "message"),
    [
        ([], "complete", "waiting; it cannot be completed yet"),
        (["call", "start"], "call", "in consultation; it cannot be called again"),
        (["call", "start"], "cancel", "cannot be cancelled"),
        (["call", "start"], "no_show", "cannot be marked as no-show"),
        (["call", "start", "complete"], "start", "already completed"),
        (["cancel"], "call", "already cancelled"),
        (["no_show"], "start", "already marked as no-show"),
        (["call"], "call", "called; it cannot be called again"),
    ],
)
def test_a_token_never_goes_backwards(
    clinic: Clinic, path: list[str], bad_step: str, message: str
) -> None:
    visit = issue(clinic, 0)
    actors = {
        "call": clinic.dr_a,
        "start": clinic.dr_a,
        "complete": clinic.dr_a,
        "cancel": clinic.reception,
        "no_show": clinic.reception,
    }
    for step in path:
        getattr(queue, step)(clinic.desk, actors[step], visit.id)
    before = audit_count(clinic.desk)
    with pytest.raises(InvalidState, match=message):
        getattr(queue, bad_step)(clinic.desk, actors[bad_step], visit.id)
    assert audit_count(clinic.desk) == before


def test_doctors_act_only_on_their_own_tokens_and_admin_on_any(clinic: Clinic) -> None:
    visit = issue(clinic, 0)  # Dr Anand's
    with pytest.raises(PermissionDenied, match="another doctor"):
        queue.call(clinic.desk, clinic.dr_b, visit.id)
    for actor in (clinic.reception, clinic.billing):
        with pytest.raises(PermissionDenied):
            queue.call(clinic.desk, actor, visit.id)
    with pytest.raises(PermissionDenied):
        queue.cancel(clinic.desk, clinic.dr_a, visit.id)
    with pytest.raises(PermissionDenied):
        queue.no_show(clinic.desk, clinic.dr_b, visit.id)
    assert queue.call(clinic.desk, clinic.admin, visit.id).status == "called"
    # the token's own doctor may record that the called patient never came
    assert queue.no_show(clinic.desk, clinic.dr_a, visit.id).status == "no_show"


def test_one_consultation_at_a_time_per_doctor(clinic: Clinic) -> None:
    first, second = issue(clinic, 0), issue(clinic, 1)
    queue.start(clinic.desk, clinic.dr_a, first.id)
    with pytest.raises(InvalidState, match="A-001 is still in consultation"):
        queue.start(clinic.desk, clinic.dr_a, second.id)
    queue.complete(clinic.desk, clinic.dr_a, first.id)
    assert queue.start(clinic.desk, clinic.dr_a, second.id).status == "in_consultation"


def test_call_next_takes_the_head_of_the_doctors_own_queue(clinic: Clinic) -> None:
    assert queue.call_next(clinic.desk, clinic.dr_a) is None
    issue(clinic, 0)
    issue(clinic, 1, priority=1)
    issue(clinic, 2, clinic.dr_b)
    called = queue.call_next(clinic.desk, clinic.dr_a)
    assert called is not None
    assert called.token_label == "A-002"
    nxt = queue.call_next(clinic.desk, clinic.dr_a)
    assert nxt is not None
    assert nxt.token_label == "A-001"
    assert queue.call_next(clinic.desk, clinic.dr_a) is None
    with pytest.raises(PermissionDenied):
        queue.call_next(clinic.desk, clinic.dr_a, clinic.dr_b.user_id)
    with pytest.raises(PermissionDenied):
        queue.call_next(clinic.desk, clinic.reception)
    by_admin = queue.call_next(clinic.desk, clinic.admin, clinic.dr_b.user_id)
    assert by_admin is not None
    assert by_admin.token_label == "A-003"


def test_the_board_shows_token_labels_per_doctor(clinic: Clinic) -> None:
    visits = [issue(clinic, n) for n in range(5)]
    issue(clinic, 5, clinic.dr_b)
    queue.start(clinic.desk, clinic.dr_a, visits[0].id)
    queue.call(clinic.desk, clinic.dr_a, visits[1].id)
    board = {row.doctor_name: row for row in queue.now_serving(clinic.desk)}
    assert list(board) == ["Dr Anand", "Dr Bose"]
    anand = board["Dr Anand"]
    assert (anand.serving, anand.called, anand.next, anand.waiting_count) == (
        "A-001",
        ["A-002"],
        ["A-003", "A-004", "A-005"],
        3,
    )
    bose = board["Dr Bose"]
    assert (bose.serving, bose.next) == (None, ["A-006"])
    assert [d.full_name for d in queue.list_doctors(clinic.desk)] == ["Dr Anand", "Dr Bose"]


def test_finished_tokens_leave_the_queue_but_can_be_listed(clinic: Clinic) -> None:
    a, b = issue(clinic, 0), issue(clinic, 1)
    queue.cancel(clinic.desk, clinic.reception, a.id)
    assert labels(queue.doctor_queue(clinic.desk, clinic.dr_a.user_id)) == ["A-002"]
    everything = queue.doctor_queue(clinic.desk, clinic.dr_a.user_id, include_finished=True)
    assert labels(everything) == ["A-002", "A-001"]
    assert b.id == everything[0].visit_id


def test_yesterdays_waiting_token_cannot_be_called_today(clinic: Clinic) -> None:
    visit = issue(clinic, 0)
    clinic.clock.at += timedelta(days=1)
    with pytest.raises(InvalidState, match="was for 2026-03-02"):
        queue.call(clinic.desk, clinic.dr_a, visit.id)
    assert queue.no_show(clinic.desk, clinic.reception, visit.id).status == "no_show"
