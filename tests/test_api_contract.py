"""The JSON API's contract (issue #17): its OpenAPI 3.1 document is valid
(``openapi-spec-validator``), the reference page is ours alone, and a property-based fuzzer
(schemathesis) against ``penny serve`` on 127.0.0.1, on both stores, finds no 5xx and no
response outside the document — and the requests it makes, all refused (it cannot guess a
token), change nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from penny.api.auth import bearer_secret
from penny.api.openapi import docs_page, openapi_document
from penny.api.routes import ROUTES
from penny.engine.ledger import Ledger
from test_ipn_processes import Serve, Shop, open_shop

#: Examples per operation (20 operations; about a minute on both stores together in CI).
EXAMPLES = int(os.environ.get("PENNY_API_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    validate(document)
    assert set(document["paths"]) >= {"/v1/payments", "/v1/refunds", "/v1/transactions"}


def test_the_reference_page_loads_nothing_from_elsewhere() -> None:
    page = docs_page(openapi_document())
    assert "<script" not in page.lower()
    assert "http://" not in page
    assert "https://" not in page
    assert "/v1/payments" in page
    assert 'id="PaymentCreate"' in page


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[tuple[Shop, Serve]]:
    shop = open_shop(database_url)
    with Serve(shop.url, tmp_path, "api", shop.env()) as server:
        server.wait_ready()
        yield shop, server
    shop.db.dispose()


def _transactions(shop: Shop) -> int:
    with shop.db.read() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM transactions")).scalar_one())


def test_the_fuzzer_finds_no_server_error_and_no_answer_outside_the_document(
    live: tuple[Shop, Serve],
) -> None:
    shop, server = live
    served = httpx.get(f"{server.base}/v1/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert httpx.get(f"{server.base}/v1/docs").status_code == 200
    schema = schemathesis.openapi.from_dict(served.json())
    headers = {"Authorization": "Bearer " + bearer_secret(shop.access_key, shop.secret, live=False)}
    before = _transactions(shop)
    balance = shop.payments.prepaid_balance(shop.merchant_id, shop.setup.instrument.id)
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) == len(ROUTES)  # every route is in the document
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exchange(case: Any) -> None:
            response = case.call_and_validate(base_url=server.base, headers=headers, checks=CHECKS)
            statuses.append(response.status_code)

        exchange()
    assert len(statuses) >= len(operations) * min(EXAMPLES, 5)
    assert {400, 404} <= set(statuses), sorted(set(statuses))
    assert _transactions(shop) == before
    assert shop.payments.prepaid_balance(shop.merchant_id, shop.setup.instrument.id) == balance
    assert Ledger(shop.db).audit().ok
