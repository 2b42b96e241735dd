"""Operating the server: Prometheus metrics at ``/metrics``, JSON access logs, ``serve --workers``.

The metrics and log tests run on SQLite and PostgreSQL through Starlette's TestClient.
"""

from __future__ import annotations

import json
import logging
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from builders import (
    add_card,
    application,
    fps_timestamp,
    manual_clock,
    new_buyer,
    new_merchant,
    open_store,
    prepaid,
    signed_fps,
)
from penny.cli.main import app as cli_app
from penny.clock import ManualClock
from penny.security import ServerKey
from penny.services.payments import InstrumentSetup
from penny.storage.database import Database, open_database
from penny.web.app import app_from_env, create_app
from penny.web.logs import ACCESS_LOGGER, JsonFormatter, configure_logging
from penny.web.metrics import action_label

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HOST = "testserver"


@dataclass
class Ops:
    db: Database
    clock: ManualClock
    client: TestClient
    key: str
    secret: str
    setup: InstrumentSetup

    def signed(self, action: str, **params: str) -> dict[str, str]:
        moment = fps_timestamp(self.clock.now_us())
        return signed_fps(action, self.key, self.secret, params, host=HOST, timestamp=moment)

    def get(self, action: str, **params: str) -> int:
        response = self.client.get("/?" + urlencode(self.signed(action, **params)))
        status: int = response.status_code
        return status

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], int]:
        """Every sample of ``/metrics``: (name, sorted labels) -> value (whole numbers only)."""
        response = self.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                value = sample.value
                if value == int(value):
                    samples[(sample.name, tuple(sorted(sample.labels.items())))] = int(value)
        return samples


@pytest.fixture
def ops(database_url: str) -> Iterator[Ops]:
    services = open_store(database_url)
    clock = manual_clock(services)
    merchant = new_merchant(services)
    buyer = new_buyer(services)
    card = add_card(services, buyer.id)
    setup = prepaid(services.payments, merchant.id, buyer.id, card.id, "ops")
    app = application(services, request_clock=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Ops(services.database, clock, client, merchant.access_key, merchant.secret, setup)
    services.database.dispose()


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], int], name: str, **labels: str
) -> int:
    return samples.get((name, tuple(sorted(labels.items()))), 0)


# -- metrics -------------------------------------------------------------------------------


def test_metrics_count_requests_outcomes_latency_and_batches(ops: Ops) -> None:
    before = ops.metrics()
    funded = ops.get(
        "FundPrepaid",
        SenderTokenId=ops.setup.second_token.id,
        PrepaidInstrumentId=ops.setup.instrument.id,
        CallerReference="fund-1",
        **{"FundingAmount.Value": "10"},
    )
    assert funded == 200
    paid = ops.get(
        "Pay",
        SenderTokenId=ops.setup.sender_token.id,
        CallerReference="pay-1",
        **{"TransactionAmount.Value": "2.50"},
    )
    assert paid == 200
    assert ops.get("GetAccountBalance") == 200
    assert ops.get("Pay", SenderTokenId="nope", CallerReference="pay-2") == 400  # no amount
    assert ops.get("MadeUp") == 400
    assert ops.client.get("/?Action=Pay").status_code == 400  # unsigned
    after = ops.metrics()

    def moved(name: str, **labels: str) -> int:
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "penny_fps_requests_total"
    assert moved(requests, action="FundPrepaid", outcome="success") == 1
    assert moved(requests, action="Pay", outcome="success") == 1
    assert moved(requests, action="GetAccountBalance", outcome="success") == 1
    assert moved(requests, action="Pay", outcome="MissingParameter") == 2
    assert moved(requests, action="other", outcome="InvalidAction") == 1
    latency = "penny_fps_request_duration_seconds_count"
    assert moved(latency, action="Pay") == 3
    assert moved(latency, action="FundPrepaid") == 1
    assert moved("penny_fps_request_duration_seconds_bucket", action="Pay", le="+Inf") == 3
    # FundPrepaid and Pay each commit one batch (at least one ledger command each).
    batches = moved("penny_ledger_batches_total")
    assert batches >= 2
    assert moved("penny_ledger_batch_commands_count") == batches
    assert moved("penny_ledger_commands_total") >= 2
    assert moved("penny_ledger_batch_commands_sum") == moved("penny_ledger_commands_total")
    assert ("penny_ledger_batch_retries_total", ()) in after


def test_action_labels_are_bounded() -> None:
    assert action_label("Pay") == "Pay"
    assert action_label("VerifySignature") == "VerifySignature"
    assert action_label(None) == "none"
    assert action_label("") == "none"
    assert action_label("'; DROP TABLE x") == "other"
    assert action_label("pay") == "other"


def test_two_apps_have_separate_registries(ops: Ops, tmp_path: Path) -> None:
    ops.get("GetAccountBalance")
    db = open_database("sqlite:///" + str(tmp_path / "second.db"))
    with TestClient(create_app(db, server_key=ServerKey.generate())) as second:
        text = second.get("/metrics").text
    db.dispose()
    assert 'penny_fps_requests_total{action="GetAccountBalance"' not in text
    assert "penny_ledger_batches_total" in text


def test_unknown_paths_and_verbs_answer_fps_errors(ops: Ops) -> None:
    for method, path, status in (
        ("GET", "/nope", 404),
        ("TRACE", "/", 405),
        ("CONNECT", "/", 405),
        ("POST", "/healthz", 405),
    ):
        response = ops.client.request(method, path)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/xml")
        root = ET.fromstring(response.content)
        assert root.findtext("Errors/Error/Code") == "InvalidRequest"
        assert root.findtext("RequestID")


# -- access logs ---------------------------------------------------------------------------


def test_one_json_line_per_request_without_signatures(
    ops: Ops, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    good = ops.signed("GetAccountBalance")
    response = ops.client.get("/?" + urlencode(good))
    assert response.status_code == 200
    bad = ops.signed("GetAccountBalance")
    bad["Signature"] = "AAAAbadSignatureValueZZZZ="
    assert ops.client.get("/?" + urlencode(bad)).status_code == 403
    records = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert len(records) == 2
    lines = [JsonFormatter().format(record) for record in records]
    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    request_id = response.content.split(b"<RequestId>")[1].split(b":0<")[0].decode()
    assert first["request_id"] == request_id
    assert first["action"] == "GetAccountBalance"
    assert first["access_key_id"] == ops.key
    assert first["status"] == 200
    assert first["error_code"] is None
    assert isinstance(first["duration_us"], int)
    assert first["duration_us"] >= 0
    assert first["level"] == "INFO"
    assert first["logger"] == ACCESS_LOGGER
    assert second["status"] == 403
    assert second["error_code"] == "SignatureDoesNotMatch"
    assert second["access_key_id"] == ops.key
    captured = caplog.text + "".join(lines)
    for secret in (good["Signature"], bad["Signature"], ops.secret):
        assert secret not in captured


def test_log_fields_from_the_client_are_cut(ops: Ops, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    ops.client.get("/?" + urlencode({"Action": "A" * 1000, "AWSAccessKeyId": "K" * 1000}))
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    data = json.loads(JsonFormatter().format(record))
    assert len(data["action"]) <= 129
    assert len(data["access_key_id"]) <= 129


def test_configure_logging_is_idempotent() -> None:
    logger = logging.getLogger("penny")
    handlers, level = list(logger.handlers), logger.level
    try:
        configure_logging()
        configure_logging()
        added = [handler for handler in logger.handlers if handler not in handlers]
        assert len(added) == 1
        assert isinstance(added[0].formatter, JsonFormatter)
    finally:
        logger.handlers = handlers
        logger.setLevel(level)


# -- serve --workers -----------------------------------------------------------------------


def test_serve_documents_workers() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--workers" in result.output
    assert "app_from_env" not in result.output  # no internal module paths in help


def test_serve_rejects_zero_workers() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--workers", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 2


def test_app_from_env_serves_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PENNY_SECRET_KEY", raising=False)
    monkeypatch.delenv("PENNY_SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("PENNY_DATABASE_URL", "sqlite:///" + str(tmp_path / "env.db"))
    logger = logging.getLogger("penny")
    handlers, level = list(logger.handlers), logger.level
    try:
        with TestClient(app_from_env()) as client:
            health = client.get("/healthz").json()
            assert health["status"] == "ok"
            assert health["store"] == "sqlite"
            assert client.get("/metrics").status_code == 200
    finally:
        logger.handlers = handlers
        logger.setLevel(level)
    assert (tmp_path / "env.db").exists()


# -- VerifySignature needs no signature ----------------------------------------------------


def test_unsigned_verify_signature_reaches_the_action(ops: Ops) -> None:
    response = ops.client.get(
        "/",
        params={
            "Action": "VerifySignature",
            "Version": "2010-08-28",
            "UrlEndPoint": "http://shop.example/return",
            "HttpParameters": "status%3DSC",
        },
    )
    # Answered as FPS answers an unsigned VerifySignature: past authentication, at the action
    # (which finds no certificateUrl in these parameters).
    assert response.status_code == 400
    assert "<Code>InvalidParams</Code>" in response.text
    assert "certificateUrl is missing in 'HttpParameters'." in response.text
    unsigned_pay = ops.client.get("/", params={"Action": "Pay", "Version": "2010-08-28"})
    assert "<Code>MissingParameter</Code>" in unsigned_pay.text
