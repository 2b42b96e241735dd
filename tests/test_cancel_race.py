"""Two CancelTokens of one token at the same moment, from two Penny processes' services over
one store, write one cancellation IPN, on both stores: the first holds its transaction open
after cancelling; the second, started then, must wait (PostgreSQL: the token's row lock taken
when it is read; SQLite: the one writer) and find the token already cancelled. (Within one
process the ledger's own write lock already serializes them.)"""

from __future__ import annotations

import threading

from builders import new_shop, open_store
from penny.domain.model import Token
from penny.engine.ledger import LedgerSession
from penny.storage import ipn_sql

WAIT_S = 20


def test_two_cancels_at_once_write_one_cancellation(database_url: str) -> None:
    services = open_store(database_url)
    elsewhere = open_store(database_url, server_key=services.server_key)
    try:
        shop = new_shop(services)
        services.directory.set_ipn_url(shop.merchant.id, "https://shop.example/ipn")
        token_id = shop.prepaid().sender_token.id
        payments = services.payments
        cancelled, release = threading.Event(), threading.Event()

        def first_cancel(session: LedgerSession) -> Token:
            done = payments.cancel_token_in(session, shop.merchant.id, token_id)
            cancelled.set()
            assert release.wait(WAIT_S)
            return done

        answers: list[Token] = []
        first = threading.Thread(target=lambda: answers.append(payments.ledger.run(first_cancel)))
        second = threading.Thread(
            target=lambda: answers.append(
                elsewhere.payments.cancel_token(shop.merchant.id, token_id)
            )
        )
        first.start()
        assert cancelled.wait(WAIT_S)
        second.start()
        second.join(0.5)
        assert second.is_alive(), "the second cancel must wait for the first's commit"
        release.set()
        first.join(WAIT_S)
        second.join(WAIT_S)
        assert len(answers) == 2
        assert all(not token.active for token in answers)
        assert answers[0].cancelled_at == answers[1].cancelled_at
        with services.database.read() as conn:
            sent = ipn_sql.listing(conn, subject_id=token_id, limit=10)
        assert [n.kind for n in sent] == ["TokenCancellation"]
    finally:
        elsewhere.database.dispose()
        services.database.dispose()
