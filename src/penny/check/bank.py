"""The bank test: set up buyers and merchants, run signed FPS clients against ``penny serve``
processes while a nemesis kills them, record the history, then hand it to the checker.

The run, in order:

1. a fresh store (a temporary SQLite file, a database in a throwaway PostgreSQL cluster, or the
   ``--database`` given) gets M merchants (each with an API key) and N buyers, each buyer with a
   prepaid and a postpaid (credit) instrument at one merchant — issued through the payments
   service, as the hosted pipelines would;
2. P ``penny serve`` processes start on 127.0.0.1;
3. C client threads issue Pay (prepaid and credit, and marketplace Pays: a prepaid Pay that
   names the next merchant's recipient token, with the caller's fee — issue #19), FundPrepaid,
   SettleDebt, WriteOffDebt, Refund, Reserve on the prepaid instrument then Settle (whole or
   part) or Cancel of it (issue #19), a Pay with the buyer's subscription (a Recurring token
   on the card: Pending, then completed by the servers' own sweep; once a day at most) and
   CancelSubscriptionAndRefund of it with a RefundAmount (#19), and the four balance reads.
   Every mutating operation gets a fresh ``CallerReference`` (Settle's is the one Penny derives
   from the reserve and the amount; Cancel needs none: cancelling twice is harmless), written
   to the history *before* the first send, and is retried on a timeout, a connection error or
   a 5xx with the same reference (on the next process) until it has an answer;
4. the nemesis SIGKILLs a random Penny process at random moments and restarts it; with the
   throwaway PostgreSQL it also crash-restarts the database once, half-way;
5. after the clients stop, every instrument's and merchant's balances are read once more with
   all processes up, the processes are stopped and the checker (:mod:`penny.check.verify`)
   compares the history with the store.

Everything random comes from ``--seed`` (the nemesis, each client's choices), so a failing
schedule can be replayed — up to the operating system's timing.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from penny.check.client import Attempts, Credentials, Reply, call
from penny.check.history import (
    BankConfig,
    Buyer,
    Event,
    History,
    Merchant,
    Op,
    RunRecord,
    World,
)
from penny.check.servers import PENNY, PennyServer
from penny.check.verify import CREDIT_LIMIT, load_facts
from penny.clock import MICROS_PER_DAY
from penny.domain.model import TokenKind
from penny.money import Money, parse_amount
from penny.sandbox.instruments import postpaid_setup, prepaid_setup, sender_token_setup
from penny.security import SERVER_KEY_ENV, ServerKey, load_server_key
from penny.services.factory import Services, build_services
from penny.services.marketplace import SetupRecipient, issue_recipient_token
from penny.services.payments import Payments, settle_request
from penny.storage.database import Database, open_database

CARD: Final = "4111111111111111"
BANK_DATABASE: Final = "bank"
#: Seconds a client keeps retrying an operation after the run's end before calling it unknown.
GRACE_S: Final = 30.0

#: Operation kinds and their weights in the mix.
MIX: Final = {
    "pay_prepaid": 24,
    "pay_market": 8,
    "pay_credit": 18,
    "fund": 14,
    "settle": 8,
    "write_off": 4,
    "refund": 8,
    "reserve": 6,
    "settle_reserve": 4,
    "cancel": 2,
    "sub_pay": 3,
    "sub_cancel": 2,
    "read_prepaid": 8,
    "read_debt": 6,
    "read_liability": 5,
    "read_outstanding": 5,
}
MUTATING: Final = frozenset(
    {
        "pay_prepaid",
        "pay_market",
        "pay_credit",
        "fund",
        "settle",
        "write_off",
        "refund",
        "reserve",
        "sub_pay",
        "sub_cancel",
    }
)
#: Each buyer's subscription: at most $5.00, once a day (so about once per run).
SUBSCRIPTION_AMOUNT: Final = 500
#: What a marketplace Pay takes for the caller: $0.10 plus 5 % (within the recipient's terms).
MARKET_FEES: Final = {
    "MarketplaceFixedFee.Value": "0.10",
    "MarketplaceFixedFee.CurrencyCode": "USD",
    "MarketplaceVariableFee": "5",
}


# -- the store and the world ---------------------------------------------------------------


@contextmanager
def prepared_store(config: BankConfig) -> Iterator[tuple[str, dict[str, str], Any]]:
    """The database URL, the environment the servers need, and the PostgreSQL cluster we own
    (``None`` for SQLite or a ``--database`` given)."""
    env: dict[str, str] = {}
    if config.database_url is not None:
        yield config.database_url, env, None
        return
    if config.store == "sqlite":
        path = (config.out_dir / "bank.db").resolve()
        for stale in path.parent.glob("bank.db*"):  # a previous run's store: start afresh
            stale.unlink()
        yield f"sqlite:///{path}", env, None
        return
    env[SERVER_KEY_ENV] = secrets.token_hex(32)
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    if config.store == "patroni":
        from penny.devtools.patroni import PatroniCluster

        with PatroniCluster.start(base) as patroni:
            yield patroni.create_database(BANK_DATABASE), env, patroni
        return
    from penny.devtools.pgcluster import PgCluster

    with PgCluster.start(base) as cluster:
        yield cluster.create_database(BANK_DATABASE), env, cluster


def _server_key(url: str, env: dict[str, str]) -> ServerKey:
    if SERVER_KEY_ENV in env:
        return ServerKey.from_hex(env[SERVER_KEY_ENV], source=f"${SERVER_KEY_ENV}")
    return load_server_key(url)


def build_world(db: Database, key: ServerKey, config: BankConfig) -> World:
    """Merchants with API keys; buyers with a card, a prepaid and a credit instrument."""
    services = build_services(db, server_key=key)
    clock, directory, payments = services.clock, services.directory, services.payments
    tag = f"{config.seed}-{secrets.token_hex(3)}"
    merchants: list[Merchant] = []
    for m in range(config.merchants):
        party, api_key = directory.create_business(f"Bank Shop {m}", f"shop{m}-{tag}@bank.example")
        creds = Credentials(api_key.key.access_key_id, api_key.secret)
        merchants.append(Merchant(m, party.id, creds))
    merchants = _marketplaces(services, merchants, tag)
    buyers: list[Buyer] = []
    valid_until = clock.now_us() + 365 * MICROS_PER_DAY
    for b in range(config.buyers):
        merchant = merchants[b % config.merchants]
        person = directory.create_personal(
            f"Bank Buyer {b}", f"buyer{b}-{tag}@bank.example", "bank-check-password"
        )
        card = directory.add_card(person.id, CARD, 12, 2035)
        prepaid = payments.setup_prepaid(
            prepaid_setup(
                merchant.party_id,
                person.id,
                card.id,
                (f"bank-{tag}-{b}-prepaid", f"bank-{tag}-{b}-funding"),
                valid_until=valid_until,
            )
        )
        credit = payments.setup_postpaid(
            postpaid_setup(
                merchant.party_id,
                person.id,
                card.id,
                (f"bank-{tag}-{b}-credit", f"bank-{tag}-{b}-settlement"),
                credit_limit=Money(CREDIT_LIMIT, "USD"),
                valid_until=valid_until,
            )
        )
        buyers.append(
            Buyer(
                index=b,
                merchant=merchant.index,
                prepaid_id=prepaid.instrument.id,
                prepaid_token=prepaid.sender_token.id,
                funding_token=prepaid.second_token.id,
                credit_id=credit.instrument.id,
                credit_token=credit.sender_token.id,
                settlement_token=credit.second_token.id,
                subscription_token=_subscription(payments, merchant, person.id, card.id, tag, b),
            )
        )
    payments.chart("USD")
    return World(tuple(merchants), tuple(buyers))


def _subscription(
    payments: Payments, merchant: Merchant, buyer_id: str, card_id: str, tag: str, b: int
) -> str:
    """The buyer's Recurring token on its card at ``merchant`` (a subscription, #19)."""
    made = payments.setup_sender_token(
        sender_token_setup(
            merchant.party_id,
            buyer_id,
            card_id,
            f"bank-{tag}-{b}-subscription",
            TokenKind.recurring,
            transaction_amount=Money(SUBSCRIPTION_AMOUNT, "USD"),
            recurring_period="1 Day",
        )
    )
    return made.token.id


def _marketplaces(services: Services, merchants: list[Merchant], tag: str) -> list[Merchant]:
    """Each merchant gets a recipient token from the next one (with two or more merchants):
    it may pay it, keeping at most $0.10 plus 5 % (the recipient pays Penny's fee)."""
    if len(merchants) < 2:
        return merchants
    linked = []
    for merchant in merchants:
        recipient = merchants[(merchant.index + 1) % len(merchants)]
        token = issue_recipient_token(
            services.payments,
            SetupRecipient(
                caller_id=merchant.party_id,
                recipient_id=recipient.party_id,
                caller_reference=f"bank-{tag}-{merchant.index}-recipient",
                max_fixed_fee=Money(10, "USD"),
                max_variable_fee=500,
                recipient_pays_fee=True,
            ),
        )
        linked.append(replace(merchant, recipient_token=token.id))
    return linked


# -- clients -------------------------------------------------------------------------------


def cents(text: str) -> int:
    return parse_amount(text, "USD").minor


def dollars(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class Run:
    """Shared state of one run: the world, the servers, the history, the clock."""

    def __init__(self, config: BankConfig, world: World, ports: list[int], history: History):
        self.config = config
        self.world = world
        self.ports = ports
        self.history = history
        self.stop_new = threading.Event()
        self.retry_deadline = float("inf")
        self._ids = iter(range(1, 1 << 62))
        self._id_lock = threading.Lock()

    def next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def reference(self, op_id: int) -> str:
        return f"bank-{self.config.seed}-{op_id}"

    def perform(self, op: Op, action: str, params: dict[str, str], rng: random.Random) -> Reply:
        """Record, send (retrying) and record the answer of ``op``."""
        self.history.invoke(op)
        attempts = Attempts()
        reply = call(
            self.world.merchants[op.merchant].creds,
            self.ports,
            action,
            params,
            deadline=self.retry_deadline,
            rng=rng,
            attempts=attempts,
            first=rng.randrange(len(self.ports)),
        )
        op.sent, op.faults = attempts.sent, attempts.faults
        if reply is None:
            op.outcome = "unknown"
            reply = Reply(0, error="no answer")
        elif reply.status == 200:
            op.outcome = "ok"
        else:
            op.outcome = "refused"
            op.error = reply.error
        self.history.complete(op)
        return reply


Paid = tuple[int, str, int, bool]  # merchant, transaction id, amount, credit
Reserved = tuple[int, int, str, int]  # merchant, buyer, reserve id, amount


@dataclass
class Mine:
    """What one client made that it may act on later: payments to refund, open reserves."""

    paid: list[Paid] = field(default_factory=list)
    reserved: list[Reserved] = field(default_factory=list)


def client_loop(run: Run, index: int) -> None:
    rng = random.Random(f"{run.config.seed}/client/{index}")
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    mine = Mine()
    while not run.stop_new.is_set():
        kind = rng.choices(kinds, weights)[0]
        buyer = rng.choice(run.world.buyers)
        op = Op(run.next_id(), index, kind, buyer.merchant, buyer.index)
        request = _request(op, buyer, rng, mine, run.world)
        if request is None:
            continue
        action, params = request
        if kind in MUTATING:
            op.reference = run.reference(op.id)
            params["CallerReference"] = op.reference
        reply = run.perform(op, action, params, rng)
        if reply.status != 200:
            continue
        read_value(op, reply)
        _remember(op, mine)


def _remember(op: Op, mine: Mine) -> None:
    """What an acknowledged ``op`` made that the client may refund, settle or cancel."""
    if op.transaction_id is None:
        return
    if op.kind in {"pay_prepaid", "pay_market", "pay_credit", "settle_reserve"}:
        mine.paid.append((op.merchant, op.transaction_id, op.amount, op.kind == "pay_credit"))
    elif op.kind == "reserve" and op.buyer is not None:
        mine.reserved.append((op.merchant, op.buyer, op.transaction_id, op.amount))


def _follow_up(op: Op, rng: random.Random, mine: Mine) -> tuple[str, dict[str, str]] | None:
    """Settle (whole or part) or Cancel one of the client's open reserves, each once."""
    if not mine.reserved:
        return None
    merchant, buyer, reserve_id, held = mine.reserved.pop(rng.randrange(len(mine.reserved)))
    op.merchant, op.buyer, op.target = merchant, buyer, reserve_id
    if op.kind == "cancel":
        op.amount = held
        return "Cancel", {"TransactionId": reserve_id}
    if rng.random() < 0.3:
        op.amount = held
        op.reference = settle_request("", reserve_id, None).caller_reference
        return "Settle", {"ReserveTransactionId": reserve_id}
    op.amount = rng.randint(1, held)
    amount = Money(op.amount, "USD")
    op.reference = settle_request("", reserve_id, amount).caller_reference
    return "Settle", {"ReserveTransactionId": reserve_id, **_amount("TransactionAmount", op.amount)}


def _market_pay(
    op: Op, buyer: Buyer, rng: random.Random, world: World
) -> tuple[str, dict[str, str]] | None:
    """A marketplace Pay to the buyer's merchant's recipient token (``None``: no marketplace
    with a single merchant)."""
    recipient_token = world.merchants[buyer.merchant].recipient_token
    if not recipient_token:
        return None
    op.amount = rng.randint(20, 500)  # more than the fees
    return "Pay", {
        "SenderTokenId": buyer.prepaid_token,
        "RecipientTokenId": recipient_token,
        **_amount("TransactionAmount", op.amount),
        **MARKET_FEES,
    }


def _subscription_request(
    op: Op, buyer: Buyer, rng: random.Random
) -> tuple[str, dict[str, str]] | None:
    """A Pay with the buyer's subscription, or CancelSubscriptionAndRefund of it with a
    RefundAmount (refused while its Pay is Pending or when there is none: nothing changes)."""
    if not buyer.subscription_token:
        return None
    if op.kind == "sub_pay":
        op.amount = rng.randint(100, SUBSCRIPTION_AMOUNT)
        return "Pay", {
            "SenderTokenId": buyer.subscription_token,
            **_amount("TransactionAmount", op.amount),
        }
    op.amount = rng.randint(1, 100)
    return "CancelSubscriptionAndRefund", {
        "SubscriptionId": buyer.subscription_token,
        **_amount("RefundAmount", op.amount),
    }


def _request(
    op: Op, buyer: Buyer, rng: random.Random, mine: Mine, world: World
) -> tuple[str, dict[str, str]] | None:
    """The FPS action and parameters of ``op`` (``None``: nothing to refund, settle or cancel
    yet, or no marketplace with a single merchant)."""
    kind = op.kind
    if kind in {"settle_reserve", "cancel"}:
        return _follow_up(op, rng, mine)
    if kind == "pay_market":
        return _market_pay(op, buyer, rng, world)
    if kind in {"sub_pay", "sub_cancel"}:
        return _subscription_request(op, buyer, rng)
    if kind == "reserve":
        op.amount = rng.randint(1, 500)
        return "Reserve", {
            "SenderTokenId": buyer.prepaid_token,
            **_amount("TransactionAmount", op.amount),
        }
    if kind in {"pay_prepaid", "pay_credit"}:
        op.amount = rng.randint(1, 500)
        token = buyer.prepaid_token if kind == "pay_prepaid" else buyer.credit_token
        return "Pay", {"SenderTokenId": token, **_amount("TransactionAmount", op.amount)}
    if kind == "fund":
        op.amount = rng.randint(100, 2000)
        return "FundPrepaid", {
            "SenderTokenId": buyer.funding_token,
            "PrepaidInstrumentId": buyer.prepaid_id,
            **_amount("FundingAmount", op.amount),
        }
    if kind == "settle":
        op.amount = rng.randint(50, 1500)
        return "SettleDebt", {
            "SenderTokenId": buyer.settlement_token,
            "CreditInstrumentId": buyer.credit_id,
            **_amount("SettlementAmount", op.amount),
        }
    if kind == "write_off":
        op.amount = rng.randint(1, 300)
        return "WriteOffDebt", {
            "CreditInstrumentId": buyer.credit_id,
            **_amount("AdjustmentAmount", op.amount),
        }
    if kind == "refund":
        if not mine.paid:
            return None
        merchant, target, amount, credit = rng.choice(mine.paid)
        op.merchant, op.buyer, op.target, op.target_credit = merchant, None, target, credit
        op.amount = rng.randint(1, amount)
        return "Refund", {"TransactionId": target, **_amount("RefundAmount", op.amount)}
    if kind == "read_prepaid":
        return "GetPrepaidBalance", {"PrepaidInstrumentId": buyer.prepaid_id}
    if kind == "read_debt":
        return "GetDebtBalance", {"CreditInstrumentId": buyer.credit_id}
    if kind == "read_liability":
        return "GetTotalPrepaidLiability", {}
    return "GetOutstandingDebtBalance", {}


def read_value(op: Op, reply: Reply) -> None:
    """Copy what an answer says into ``op``."""
    leaves = reply.leaves
    if "TransactionId" in leaves:
        op.transaction_id = leaves["TransactionId"]
        op.status = leaves.get("TransactionStatus")
    if leaves.get("RefundTransactionId"):  # a subscription's refund: Success at once
        op.transaction_id, op.status = leaves["RefundTransactionId"], "Success"
    for prefix, main, pending in (
        ("PrepaidBalance", "AvailableBalance", "PendingInBalance"),
        ("DebtBalance", "AvailableBalance", "PendingOutBalance"),
        ("OutstandingPrepaidLiability", "OutstandingBalance", "PendingInBalance"),
        ("OutstandingDebt", "OutstandingBalance", "PendingOutBalance"),
    ):
        if f"{prefix}.{main}.Value" in leaves:
            op.value = cents(leaves[f"{prefix}.{main}.Value"])
            op.pending = cents(leaves[f"{prefix}.{pending}.Value"])


def _amount(name: str, minor: int) -> dict[str, str]:
    return {f"{name}.Value": dollars(minor), f"{name}.CurrencyCode": "USD"}


def final_reads(run: Run) -> None:
    """With every process up and no client running: each balance once more."""
    rng = random.Random(f"{run.config.seed}/final")
    run.retry_deadline = time.monotonic() + GRACE_S
    for buyer in run.world.buyers:
        for kind, action, name, value in (
            ("final_prepaid", "GetPrepaidBalance", "PrepaidInstrumentId", buyer.prepaid_id),
            ("final_debt", "GetDebtBalance", "CreditInstrumentId", buyer.credit_id),
        ):
            op = Op(run.next_id(), -1, kind, buyer.merchant, buyer.index)
            read_value(op, run.perform(op, action, {name: value}, rng))
    for merchant in run.world.merchants:
        for kind, action in (
            ("final_liability", "GetTotalPrepaidLiability"),
            ("final_outstanding", "GetOutstandingDebtBalance"),
        ):
            op = Op(run.next_id(), -1, kind, merchant.index)
            read_value(op, run.perform(op, action, {}, rng))


# -- the nemesis ---------------------------------------------------------------------------


class Nemesis:
    """Kills a random Penny process with SIGKILL at random moments and restarts it; with a
    PostgreSQL cluster it owns, crash-restarts the database once, half-way through."""

    def __init__(
        self, run: Run, servers: list[PennyServer], cluster: Any, events: list[Event]
    ) -> None:
        self.run = run
        self.servers = servers
        self.cluster = cluster
        self.events = events
        self.rng = random.Random(f"{run.config.seed}/nemesis")
        self.done = threading.Event()
        self.restart_s: list[float] = []
        self.error: BaseException | None = None

    def event(self, kind: str, detail: str) -> None:
        event = Event(self.run.history.now(), kind, detail)
        self.events.append(event)
        self.run.history.fault(event)

    def __call__(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the run, which then fails
            self.error = exc
        finally:
            self.done.set()

    def _loop(self) -> None:
        config = self.run.config
        mean_gap = config.duration_s / (config.kills + 1)
        db_restart_at = config.kills // 2 if self.cluster is not None else -1
        for trial in range(config.kills):
            time.sleep(self.rng.uniform(0.3, 1.7) * mean_gap)
            if trial == db_restart_at and config.restart_database:
                # The Penny processes stay up: they must find their way back on their own.
                self.event("db-down", "PostgreSQL crash-restart (immediate)")
                self.cluster.restart("immediate")
                self.event("db-up", "PostgreSQL accepting connections")
                time.sleep(self.rng.uniform(0.3, 1.7) * mean_gap)
            self.kill_penny(trial + 1)

    def kill_penny(self, trial: int) -> None:
        """SIGKILL a random Penny process and start it again."""
        server = self.rng.choice(self.servers)
        server.kill()
        self.event("kill", f"penny #{server.index} (SIGKILL, trial {trial})")
        if len(self.servers) > 1:
            # The other process keeps serving while this one is down for a moment.
            time.sleep(self.rng.uniform(0.0, 0.5))
        self.restart_s.append(server.start())
        self.event("up", f"penny #{server.index}")


# -- the run -------------------------------------------------------------------------------


ProgressFn = Callable[[str], None]


def run_bank(config: BankConfig, progress: ProgressFn = lambda _line: None) -> RunRecord:
    """Set up, run clients and nemesis, take the final reads; the record to check."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    with prepared_store(config) as (url, env, cluster), ExitStack() as stack:
        with open_database(url) as db:
            world = build_world(db, _server_key(url, env), config)
        progress(
            f"store ready: {len(world.merchants)} merchants, {len(world.buyers)} buyers "
            f"({_store_name(config, url)})"
        )
        servers = _start_servers(config, url, env, stack)
        progress(f"{len(servers)} penny process(es) up on ports {[s.port for s in servers]}")
        t0 = time.monotonic()
        history = History(config.out_dir / "history.jsonl", t0)
        stack.callback(history.close)
        run = Run(config, world, [s.port for s in servers], history)
        events: list[Event] = []
        nemesis = _nemesis(config, run, servers, cluster, events)
        _traffic(run, nemesis)
        duration = history.now()
        progress(f"clients done after {duration:.1f} s; {len(history.ops)} operations")
        final_reads(run)
        for server in servers:
            server.stop()
        record = _wrap_up(config, world, url, env, cluster)
        record.ops, record.events, record.started_at = history.ops, events, t0
        record.duration_s, record.restart_s = duration, nemesis.restart_s
        if config.store == "patroni" and config.database_url is None:
            from penny.check.ha import failover_figures

            record.failovers = failover_figures(history.ops, events, duration)
        return record


def _store_name(config: BankConfig, url: str) -> str:
    if config.store == "patroni" and config.database_url is None:
        return "PostgreSQL on Patroni: 3 nodes, synchronous replication"
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def _start_servers(
    config: BankConfig, url: str, env: dict[str, str], stack: ExitStack
) -> list[PennyServer]:
    server_env = dict(env)
    if config.faults:
        server_env["PENNY_FAULTS"] = config.faults
    servers = [
        PennyServer(i, url, config.out_dir / f"penny-{i}.log", server_env)
        for i in range(config.processes)
    ]
    started = time.monotonic()
    for server in servers:
        stack.callback(server.stop)
        server.spawn()
    for server in servers:
        server.wait_healthy(started)
    return servers


def _nemesis(
    config: BankConfig, run: Run, servers: list[PennyServer], cluster: Any, events: list[Event]
) -> Nemesis:
    if config.store == "patroni" and cluster is not None:
        from penny.check.ha import ClusterNemesis

        return ClusterNemesis(run, servers, cluster, events)
    return Nemesis(run, servers, cluster, events)


def _traffic(run: Run, nemesis: Nemesis) -> None:
    """Clients and nemesis until the duration is over and the nemesis is done; then the
    clients' last operations get :data:`GRACE_S` to be answered."""
    threads = [
        threading.Thread(target=client_loop, args=(run, i), daemon=True)
        for i in range(run.config.clients)
    ]
    nemesis_thread = threading.Thread(target=nemesis, daemon=True)
    for thread in threads:
        thread.start()
    nemesis_thread.start()
    end = run.history.now() + run.config.duration_s
    while run.history.now() < end or not nemesis.done.is_set():
        time.sleep(0.2)
    run.stop_new.set()
    run.retry_deadline = time.monotonic() + GRACE_S
    for thread in threads:
        thread.join()
    nemesis_thread.join()
    if nemesis.error is not None:
        raise nemesis.error


def _wrap_up(
    config: BankConfig, world: World, url: str, env: dict[str, str], cluster: Any
) -> RunRecord:
    """``penny audit`` and what the store holds (on Patroni: on every node, after catch-up)."""
    audit = subprocess.run(
        [*PENNY, "audit", "--database", url],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
        check=False,
    )
    with open_database(url, migrate=False) as db:
        facts = load_facts(db, world)
    replicas: list[Any] = []
    if config.store == "patroni" and cluster is not None:
        from penny.check.ha import check_replicas

        replicas = check_replicas(cluster, BANK_DATABASE, world)
    return RunRecord(
        config=config,
        world=world,
        ops=[],
        events=[],
        started_at=0.0,
        duration_s=0.0,
        database_url=url,
        restart_s=[],
        audit_clean=audit.returncode == 0,
        audit_output=audit.stdout + audit.stderr,
        facts=facts,
        replicas=replicas,
    )
