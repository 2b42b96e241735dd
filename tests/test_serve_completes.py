"""``penny serve`` finishes what is due on its own (issue #19): a card Pay answered
``Pending`` becomes ``Success`` — with its IPN — on a real server on 127.0.0.1 with nobody
running ``penny sandbox advance``; and two sweeps racing on one store finish each transaction
once (each due row is taken only while it is still due), on both stores."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urlencode

import httpx
from typer.testing import CliRunner

from builders import amount_params, application, new_shop, open_store, serving, signed_fps, usd
from ipn_receiver import Receiver
from penny.cli.main import app as cli_app
from penny.clock import MICROS_PER_SECOND
from penny.domain.model import Status, TokenKind, Transaction
from penny.ipn.settings import IpnSettings
from penny.services.factory import Services
from penny.services.payments import PayRequest
from penny.storage import ipn_sql
from penny.web.app import COMPLETE_EVERY_US, complete_every_from_env

WAIT_S = 20.0


def _signed(key: str, secret: str, port: int, action: str, **params: str) -> str:
    request = signed_fps(action, key, secret, params, host=f"127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}/?{urlencode(request)}"


def _element(xml: str, name: str) -> str:
    match = re.search(f"<{name}>([^<]*)</{name}>", xml)
    assert match is not None, xml
    return match.group(1)


def test_a_pending_card_pay_completes_with_its_ipn_without_an_advance(database_url: str) -> None:
    services = open_store(database_url)
    shop = new_shop(services, bank=False)
    token = shop.token(TokenKind.single_use, transaction_amount="5")
    key, secret = shop.merchant.access_key, shop.merchant.secret
    ipn = IpnSettings(public_url="http://127.0.0.1", poll_us=50_000)
    app = application(services, ipn=ipn, complete_every_us=200_000)
    try:
        with Receiver() as receiver, serving(app, lifespan=True) as port, httpx.Client() as http:
            paid = http.get(
                _signed(
                    key,
                    secret,
                    port,
                    "Pay",
                    SenderTokenId=token.token.id,
                    CallerReference="sweep-1",
                    OverrideIPNURL=receiver.url("/sweep"),
                    **amount_params("TransactionAmount", "4.00"),
                )
            )
            assert paid.status_code == 200, paid.text
            assert _element(paid.text, "TransactionStatus") == "Pending"
            txn_id = _element(paid.text, "TransactionId")
            deadline, status = time.monotonic() + WAIT_S, "Pending"
            while status == "Pending":
                assert time.monotonic() < deadline, "the Pay was never completed"
                time.sleep(0.1)
                answer = http.get(
                    _signed(key, secret, port, "GetTransactionStatus", TransactionId=txn_id)
                )
                status = _element(answer.text, "TransactionStatus")
            assert status == "Success"
            arrived = receiver.wait_for(2, timeout_s=WAIT_S)
        assert [r.params["transactionStatus"] for r in arrived] == ["PENDING", "SUCCESS"]
        assert {r.params["transactionId"] for r in arrived} == {txn_id}
        assert services.ledger.audit().ok
    finally:
        services.database.dispose()


def test_penny_serve_sweeps_every_five_seconds_unless_told() -> None:
    shown = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert re.search(r"--complete-every SECONDS .*\[default: 5\.0; x>=0\]", shown.output, re.S)
    assert COMPLETE_EVERY_US == 5 * MICROS_PER_SECOND
    assert complete_every_from_env() == COMPLETE_EVERY_US  # the workers' default too


def test_two_sweeps_racing_finish_each_pending_pay_once(database_url: str) -> None:
    services = open_store(database_url)
    # Two processes' services: one Ledger serialises its own writers, two do not.
    other = open_store(database_url, clock=services.clock, server_key=services.server_key)
    try:
        _race(services, other)
    finally:
        other.database.dispose()
        services.database.dispose()


def _race(services: Services, other: Services) -> None:
    shop = new_shop(services, bank=False)
    token = shop.token(TokenKind.multi_use, global_amount_limit="100")
    merchant = shop.merchant.id
    pays = [
        PayRequest(merchant, f"race-{n}", token.token.id, usd("0.10"), ipn_url="http://ipn.test/")
        for n in range(40)
    ]
    pending = [t for t in services.payments.submit(pays) if isinstance(t, Transaction)]
    assert [t.status for t in pending] == [Status.pending] * len(pays)
    start = threading.Barrier(2)
    finished: list[list[Transaction]] = [[], []]
    sweepers = (services.payments, other.payments)

    def sweep(slot: int) -> None:
        start.wait()
        finished[slot] = sweepers[slot].complete_due()

    threads = [threading.Thread(target=sweep, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    ids = [t.id for batch in finished for t in batch]
    assert sorted(ids) == sorted(t.id for t in pending)
    assert services.payments.complete_due() == []
    with services.database.read() as conn:
        notes = ipn_sql.listing(conn, account_id=merchant, limit=1000)
    per_pay = {t.id: sum(1 for n in notes if n.subject_id == t.id) for t in pending}
    assert set(per_pay.values()) == {2}  # Pending, then Success: never a second completion
    assert services.ledger.audit().ok
