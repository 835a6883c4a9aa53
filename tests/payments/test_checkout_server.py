"""The server's Stripe Checkout endpoints, over real HTTP, against the Stripe stand-in.

Each test reads as a rule from DESIGN.md section 7 or issue 5.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests

from clinic_server.payments.tables import StripeCheckout
from tests.payments.conftest import PATIENT_NAME, PROCEDURE, World


def open_checkout(world: World, bill_id: str, attempt_id: str | None = None) -> dict:
    body = {"bill_id": bill_id}
    if attempt_id:
        body["attempt_id"] = attempt_id
    answer = world.post("/checkout-sessions", body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def completed_event(world: World, session_id: str) -> str:
    events = [
        e
        for e in world.standin.events_of("checkout.session.completed")
        if e["data"]["object"]["id"] == session_id
    ]
    assert len(events) == 1
    return events[0]["id"]


def test_session_amount_comes_from_the_servers_bill_and_stripe_sees_no_patient_data(world: World):
    bill_id = world.add_bill(total_minor=15000)
    # The desk cannot name an amount: the request schema has no such field.
    refused = world.post("/checkout-sessions", {"bill_id": bill_id, "amount_minor": 1})
    assert refused.status_code == 422

    started = open_checkout(world, bill_id)

    assert started["amount_minor"] == 15000
    assert started["currency"] == "USD"
    assert started["url"].startswith(world.standin.base_url + "/c/pay/")
    assert started["success_url_prefix"].startswith(f"https://127.0.0.1:{world.server.port}/")
    assert started["cancel_url_prefix"].startswith(f"https://127.0.0.1:{world.server.port}/")
    [create] = [r for r in world.standin.requests if r.path == "/v1/checkout/sessions"]
    params = create.params
    [item] = params["line_items"]
    assert item["price_data"]["unit_amount"] == "15000"
    assert item["price_data"]["currency"] == "usd"
    assert item["price_data"]["product_data"] == {"name": "Clinic services - invoice INV-B-000001"}
    assert params["client_reference_id"] == bill_id
    assert params["metadata"]["bill_id"] == bill_id
    assert params["payment_intent_data"]["metadata"]["bill_id"] == bill_id
    assert params["success_url"].startswith("https://")
    assert "{CHECKOUT_SESSION_ID}" in params["success_url"]
    assert params["cancel_url"].startswith("https://")
    lifetime = int(params["expires_at"]) - time.time()
    assert 30 * 60 < lifetime <= 60 * 60
    assert create.idempotency_key == f"clinic-checkout-{bill_id}-{started['attempt_id']}"
    # Nothing that identifies the patient or the care they received leaves the clinic.
    for secret in (PATIENT_NAME, "Quixotic", PROCEDURE, "HIV", "+15550001234", world.patient_id):
        assert secret.lower() not in create.raw_body.lower()
        assert secret.lower() not in json.dumps(params).lower()


def test_a_partly_paid_bill_is_charged_only_its_balance(world: World):
    bill_id = world.add_bill(total_minor=15000)
    world.pay_cash(bill_id, 6000, bill_status="partially_paid")

    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    confirmed = world.post("/confirm", {"session_id": started["session_id"]}).json()

    assert started["amount_minor"] == 9000
    assert world.standin.sessions[started["session_id"]]["amount_total"] == 9000
    assert confirmed["status"] == "paid"
    assert confirmed["bill_status"] == "paid"
    assert world.standin.refunds == {}


def test_a_retried_request_reuses_the_session_and_a_new_attempt_closes_the_old_one(world: World):
    bill_id = world.add_bill()
    attempt = str(uuid.uuid4())
    first = open_checkout(world, bill_id, attempt)
    again = open_checkout(world, bill_id, attempt)
    assert again["session_id"] == first["session_id"]

    second = open_checkout(world, bill_id)

    assert second["session_id"] != first["session_id"]
    assert world.standin.sessions[first["session_id"]]["status"] == "expired"
    assert world.standin.sessions[second["session_id"]]["status"] == "open"


def test_webhook_first_then_confirm_records_one_payment(any_world: World):
    world = any_world
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])

    assert world.standin.deliver(completed_event(world, started["session_id"])) == 200
    confirmed = world.post("/confirm", {"session_id": started["session_id"], "outcome": "success"})

    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "paid"
    assert confirmed.json()["bill_status"] == "paid"
    [payment] = world.payments_of(bill_id)
    assert (payment.method, payment.amount_minor, payment.currency) == ("stripe", 15000, "USD")
    assert payment.reference.startswith("pi_")
    assert payment.received_by == world.user_id
    assert payment.desk_code == "B"
    assert confirmed.json()["payment_id"] == payment.id
    assert world.bill(bill_id).status == "paid"
    # It reaches the desks like any other change: one change-log entry, a real version.
    assert world.change_log_entries("payment", payment.id) == 1
    assert payment.version > 0


def test_confirm_first_then_webhook_records_one_payment(world: World):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])

    confirmed = world.post("/confirm", {"session_id": started["session_id"], "outcome": "success"})
    status = world.standin.deliver(completed_event(world, started["session_id"]))

    assert confirmed.json()["status"] == "paid"
    assert status == 200
    assert len(world.payments_of(bill_id)) == 1
    assert world.checkout(started["session_id"]).payment_id == confirmed.json()["payment_id"]


def test_a_webhook_faster_than_the_servers_own_bookkeeping_still_records(world: World):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    with world.state.db.write() as session:  # as if the session id were not yet stored
        row = session.get(StripeCheckout, started["attempt_id"])
        row.session_id, row.status = None, "creating"
    world.standin.pay(started["session_id"])

    assert world.standin.deliver(completed_event(world, started["session_id"])) == 200

    [payment] = world.payments_of(bill_id)
    assert world.checkout(started["session_id"]).payment_id == payment.id


def test_a_webhook_delivered_twice_is_acted_on_once(world: World):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    event_id = completed_event(world, started["session_id"])

    assert world.standin.deliver(event_id) == 200
    assert world.standin.deliver(event_id) == 200

    assert len(world.payments_of(bill_id)) == 1
    [payment] = world.payments_of(bill_id)
    assert world.change_log_entries("payment", payment.id) == 1


def test_confirm_and_webhook_at_the_same_moment_record_one_payment(world: World):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    event_id = completed_event(world, started["session_id"])
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(world.standin.deliver(event_id))),
        threading.Thread(
            target=lambda: answers.append(
                world.post("/confirm", {"session_id": started["session_id"]}).status_code
            )
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [200, 200]
    assert len(world.payments_of(bill_id)) == 1


@pytest.mark.parametrize(
    ("forgery", "why"),
    [
        ({"secret": "whsec_someone_else"}, "bad signature"),
        ({"timestamp": int(time.time()) - 3600}, "stale timestamp (replay)"),
        ({"timestamp": int(time.time()) + 3600}, "timestamp from the future"),
    ],
)
def test_webhooks_that_fail_verification_are_rejected_and_record_nothing(
    world: World, forgery: dict, why: str
):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    event_id = completed_event(world, started["session_id"])

    status = world.standin.deliver(event_id, **forgery)

    assert status == 400, why
    assert world.payments_of(bill_id) == []
    assert world.bill(bill_id).status == "issued"
    # The genuine delivery still works afterwards (the event was not marked processed).
    assert world.standin.deliver(event_id) == 200
    assert len(world.payments_of(bill_id)) == 1


def test_a_signed_event_whose_amount_does_not_match_the_bill_is_rejected(world: World):
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    event = dict(world.standin.events[completed_event(world, started["session_id"])])
    event["data"] = {"object": {**event["data"]["object"], "amount_total": 100}}

    status = world.standin.deliver(event["id"], payload=json.dumps(event))

    assert status == 400
    assert world.payments_of(bill_id) == []
    assert world.checkout(started["session_id"]).status == "review"


def test_a_session_whose_amount_at_stripe_differs_is_never_recorded(world: World):
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.standin.sessions[started["session_id"]]["amount_total"] = 1500  # tampered at Stripe
    world.standin.pay(started["session_id"])

    confirmed = world.post("/confirm", {"session_id": started["session_id"]})

    assert confirmed.status_code == 409
    assert "does not match" in confirmed.json()["detail"]
    assert world.payments_of(bill_id) == []


def test_paid_in_cash_meanwhile_the_online_payment_is_refunded_not_kept(any_world: World):
    world = any_world
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.pay_cash(bill_id, 15000)  # the patient paid at the desk while the page was open
    world.standin.pay(started["session_id"])

    assert world.standin.deliver(completed_event(world, started["session_id"])) == 200
    confirmed = world.post("/confirm", {"session_id": started["session_id"]}).json()

    payments = world.payments_of(bill_id)
    assert sorted((p.method, p.amount_minor) for p in payments) == [
        ("cash", 15000),
        ("stripe", -15000),
        ("stripe", 15000),
    ]
    charge = next(p for p in payments if p.method == "stripe" and p.amount_minor > 0)
    refund = next(p for p in payments if p.amount_minor < 0)
    assert refund.refund_of == charge.id
    assert refund.reference.startswith("re_")
    [stripe_refund] = world.standin.refunds.values()
    assert stripe_refund["amount"] == 15000
    assert stripe_refund["payment_intent"] == charge.reference
    assert confirmed["status"] == "review"
    assert "refunded" in confirmed["message"]
    assert world.bill(bill_id).status == "paid"
    # An admin finds it in the review list, with the invoice and the refund.
    world.login(world.add_user("ada", ["admin"]))
    review = requests.get(
        f"{world.url}/api/v1/payments/stripe/review", headers=world.headers(), timeout=30
    ).json()
    assert [(r["invoice_number"], r["refund_payment_id"]) for r in review] == [
        ("INV-B-000001", refund.id)
    ]


def test_cancel_expires_the_session_and_leaves_the_bill_payable(world: World):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)

    answer = world.post("/confirm", {"session_id": started["session_id"], "outcome": "cancel"})

    assert answer.json()["status"] == "cancelled"
    assert world.standin.sessions[started["session_id"]]["status"] == "expired"
    assert world.payments_of(bill_id) == []
    assert world.bill(bill_id).status == "issued"
    assert open_checkout(world, bill_id)["amount_minor"] == 15000  # payable again


def test_an_expired_session_is_reported_and_the_bill_stays_payable(world: World):
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.clock_offset = 61 * 60  # Stripe's clock passes expires_at
    deadline = time.monotonic() + 5
    while world.standin.sessions[started["session_id"]]["status"] != "expired":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [expired] = world.standin.events_of("checkout.session.expired")

    assert world.standin.deliver(expired["id"]) == 200
    answer = world.post("/confirm", {"session_id": started["session_id"], "outcome": "success"})

    assert answer.json()["status"] == "expired"
    assert world.checkout(started["session_id"]).status == "expired"
    assert world.payments_of(bill_id) == []
    world.standin.clock_offset = 0
    assert open_checkout(world, bill_id)["amount_minor"] == 15000


def test_refund_goes_through_stripe_and_is_recorded_as_a_negative_payment(world: World):
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    paid = world.post("/confirm", {"session_id": started["session_id"]}).json()

    too_much = world.post(
        "/refunds", {"payment_id": paid["payment_id"], "amount_minor": 20000, "reason": "x"}
    )
    refunded = world.post(
        "/refunds",
        {"payment_id": paid["payment_id"], "amount_minor": 5000, "reason": "Test not done"},
    )

    assert too_much.status_code == 422
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    [stripe_refund] = world.standin.refunds.values()
    assert stripe_refund["amount"] == 5000
    negative = next(p for p in world.payments_of(bill_id) if p.amount_minor < 0)
    assert negative.amount_minor == -5000
    assert negative.refund_of == paid["payment_id"]
    assert negative.reason == "Test not done"
    assert world.bill(bill_id).status == "partially_paid"


def test_bills_that_are_not_payable_are_refused_with_a_reason(world: World):
    paid_bill = world.add_bill()
    world.pay_cash(paid_bill, 15000)
    draft = world.add_bill(status="draft")

    assert world.post("/checkout-sessions", {"bill_id": paid_bill}).status_code == 409
    assert world.post("/checkout-sessions", {"bill_id": draft}).status_code == 409
    missing = world.post("/checkout-sessions", {"bill_id": str(uuid.uuid4())})
    assert missing.status_code == 404
    assert "sync" in missing.json()["detail"]
    assert [r for r in world.standin.requests if r.method == "POST"] == []


def test_the_endpoints_need_a_signed_in_cashier(world: World):
    bill_id = world.add_bill()
    world.login(world.add_user("rita", ["receptionist"]))
    refused = world.post("/checkout-sessions", {"bill_id": bill_id})
    assert refused.status_code == 403
    assert "billing" in refused.json()["detail"]
    world.token = "not-a-token"

    assert world.post("/checkout-sessions", {"bill_id": bill_id}).status_code == 401
    assert world.post("/confirm", {"session_id": "cs_test_x"}).status_code == 401
    assert world.post("/refunds", {"payment_id": "p", "reason": "x"}).status_code == 401
    assert world.standin.requests == []


def test_a_refund_made_in_stripes_dashboard_is_recorded_once(world: World):
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    paid = world.post("/confirm", {"session_id": started["session_id"]}).json()
    intent = world.standin.sessions[started["session_id"]]["payment_intent"]

    refund = world.standin.create_refund({"payment_intent": intent, "amount": "4000"})
    [event] = [e for e in world.standin.events_of("refund.created")]
    assert world.standin.deliver(event["id"]) == 200
    assert world.standin.deliver(event["id"]) == 200

    [negative] = [p for p in world.payments_of(bill_id) if p.amount_minor < 0]
    assert negative.amount_minor == -4000
    assert negative.reference == refund["id"]
    assert negative.refund_of == paid["payment_id"]
    assert world.bill(bill_id).status == "partially_paid"


def test_stripes_notice_of_a_refund_the_desk_made_changes_nothing(world: World):
    bill_id = world.add_bill(total_minor=15000)
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    paid = world.post("/confirm", {"session_id": started["session_id"]}).json()
    refunded = world.post(
        "/refunds", {"payment_id": paid["payment_id"], "reason": "Service not given"}
    ).json()

    [event] = world.standin.events_of("refund.created")
    assert world.standin.deliver(event["id"]) == 200
    [refund] = world.standin.refunds.values()
    later = world.standin.emit("refund.updated", world.standin.public(refund))
    assert world.standin.deliver(later["id"]) == 200

    [negative] = [p for p in world.payments_of(bill_id) if p.amount_minor < 0]
    assert negative.id == refunded["refund_payment_id"]
    assert negative.amount_minor == -15000
    assert negative.reason == "Service not given"
    assert world.bill(bill_id).status == "refunded"
    # The cashier's reason stays in the clinic: Stripe only got ids.
    [request] = [r for r in world.standin.requests if r.path == "/v1/refunds"]
    assert "Service not given" not in request.raw_body


def test_on_postgresql_webhook_and_confirm_race_records_one_payment(pg_world: World):
    world = pg_world
    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    event_id = completed_event(world, started["session_id"])
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(world.standin.deliver(event_id))),
        threading.Thread(
            target=lambda: answers.append(
                world.post("/confirm", {"session_id": started["session_id"]}).status_code
            )
        ),
        threading.Thread(target=lambda: answers.append(world.standin.deliver(event_id))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == [200, 200, 200]
    [payment] = world.payments_of(bill_id)
    assert world.change_log_entries("payment", payment.id) == 1
    assert world.bill(bill_id).status == "paid"


def test_a_server_without_stripe_keys_says_online_payment_is_not_set_up(world: World):
    from clinic_desktop.payments.online_payments import (
        OnlinePaymentsClient,
        OnlinePaymentUnavailable,
    )
    from clinic_server.payments.settings import StripeSettings

    bill_id = world.add_bill()
    world.payments.settings = StripeSettings(_env_file=None)  # no keys configured
    client = OnlinePaymentsClient(world.url, world.headers, allow_insecure=True)

    with pytest.raises(OnlinePaymentUnavailable) as refused:
        client.start_checkout(bill_id)

    assert "not set up" in str(refused.value)
    assert "cash or card" in str(refused.value)
    assert world.standin.requests == []


def test_another_clinic_cannot_see_confirm_or_refund_this_clinics_payments(world: World):
    from tests.payments.conftest import _seed

    bill_id = world.add_bill()
    started = open_checkout(world, bill_id)
    world.standin.pay(started["session_id"])
    paid = world.post("/confirm", {"session_id": started["session_id"]}).json()
    other = _seed(world.state)  # a second clinic on the same server, with its own cashier
    world.clinic_id, world.user_id = other["clinic_id"], other["user_id"]
    world.device_id, world.device_secret = other["device_id"], other["device_secret"]
    world.login()

    assert world.post("/checkout-sessions", {"bill_id": bill_id}).status_code == 404
    assert world.post("/confirm", {"session_id": started["session_id"]}).status_code == 404
    refund = world.post("/refunds", {"payment_id": paid["payment_id"], "reason": "x"})
    assert refund.status_code == 404
    assert world.standin.refunds == {}
