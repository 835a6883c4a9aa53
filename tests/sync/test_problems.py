"""A change the server refuses is shown to an admin, never dropped; retry and discard."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic_desktop.models import AuditEvent, OutboxEntry, PriceItem, SyncProblem
from clinic_desktop.services import sync_admin
from clinic_desktop.sync.push import pending_count
from tests.sync.conftest import ADMIN, DeskHandle, SharedClinic, snapshot_rows


def _item(session: Session, item_id: str) -> PriceItem:
    item = session.get(PriceItem, item_id)
    assert item is not None
    return item


def _price_item_id(handle: DeskHandle) -> str:
    with handle.desk.reading() as session:
        return session.scalars(select(PriceItem.id).where(PriceItem.code == "CONS-DORIS")).one()


def test_a_refused_change_becomes_a_sync_problem_and_the_server_copy_returns(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    reception = shared.new_desk("Reception", shared.staff.receptionist)
    desks.append(reception)
    item_id = _price_item_id(reception)
    # A receptionist may not change prices; an older desk (or a tampered one) tries anyway.
    with reception.desk.transaction(reception.actors[shared.staff.receptionist]) as session:
        _item(session, item_id).amount_minor = 1

    report = reception.sync()

    assert report.rejected == 1
    assert pending_count(reception.desk) == 0
    with reception.desk.reading() as session:
        problem = session.scalars(select(SyncProblem).where(SyncProblem.row_id == item_id)).one()
        entry_state = session.scalars(
            select(OutboxEntry.state).where(OutboxEntry.mutation_id == problem.mutation_id)
        ).one()
        restored = _item(session, item_id).amount_minor
        problem_state, reason = problem.state, problem.reason
    assert entry_state == "rejected"
    assert problem_state == "open"
    assert reason
    assert restored == 2500  # the refused edit no longer shows as if saved

    # The admin on that desk sees it in the list; discarding is audited.
    admin = reception.sign_in(ADMIN)
    listed = sync_admin.list_problems(reception.desk, admin)
    assert [p.row_id for p in listed] == [item_id]
    assert listed[0].fields == ["amount_minor"]
    sync_admin.discard_problem(reception.desk, admin, listed[0].id)
    assert sync_admin.list_problems(reception.desk, admin) == []
    with reception.desk.reading() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_id == item_id)
        ).all()
    assert "sync.problem_discard" in actions


def test_an_admin_retry_sends_the_change_again_under_a_new_mutation_id(
    shared: SharedClinic, desks: list[DeskHandle]
) -> None:
    reception = shared.new_desk("Reception", shared.staff.receptionist)
    desks.append(reception)
    item_id = _price_item_id(reception)
    with reception.desk.transaction(reception.actors[shared.staff.receptionist]) as session:
        _item(session, item_id).name = "Consultation (new)"
    assert reception.sync().rejected == 1

    admin = reception.sign_in(ADMIN)
    problem = sync_admin.list_problems(reception.desk, admin)[0]
    # The admin decides the change is right and makes it again themself.
    with reception.desk.transaction(admin) as session:
        _item(session, item_id).name = "Consultation (new)"
    new_id = sync_admin.retry_problem(reception.desk, admin, problem.id)
    assert new_id != problem.mutation_id
    reception.transport.login(ADMIN, "Quiet-harbour-17")
    assert reception.sync().rejected == 0
    shared.admin_desk.sync()
    assert snapshot_rows(shared.admin_desk, "price_item")[item_id]["name"] == "Consultation (new)"
    states = sync_admin.list_problems(reception.desk, admin, include_closed=True)
    assert [p.state for p in states] == ["retried"]
    # Put the price list back for other tests.
    with shared.admin_desk.desk.transaction(shared.admin_desk.actors[ADMIN]) as session:
        _item(session, item_id).name = "Consultation"
    shared.admin_desk.sync()
