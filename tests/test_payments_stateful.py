"""Stateful property test: the payments service on a real store against a reference model.

Hypothesis drives :class:`penny.services.payments.Payments` with random mixes of FundPrepaid,
Pay (prepaid and postpaid), SettleDebt, WriteOffDebt, Refund, Reserve, Settle (whole or
partial) and Cancel (of a reserve or a pending charge; issue #19), CancelToken (followed by an
attempt to use the token), clock advances followed by ``complete_due`` (which also expires
reserves past their timeout), retries of earlier
requests under the same CallerReference (same content, and other content) and batches of
several requests in one ``submit``, and (issue #19) SingleUse, MultiUse and Recurring tokens:
issuing them and Pay with them on every kind of payment method, with their limits (one use,
the most one payment may be, payments per day, the global amount limit) and refunds of
those Pays, and CancelSubscriptionAndRefund of the Recurring ones (the refund of the most
recent Pay decided as the model decides a Refund; a refused one leaves the token active). The
reference model below is written from the documented
rules (docs/decisions.md, docs/sandbox.md, docs/fees.md), independently of
:mod:`penny.domain.rules`: per instrument its posted prepaid balance or debt, what is pending
on it, the total funded and charged, and which Pays a settlement has been accepted since; per
merchant its payable balance (amount − fee of every successful money movement); per instrument
what reserves hold on it (off the prepaid balance, within the credit line); per buyer the
Penny balance; per transaction its status and the amount refunded. For every request the model
says what must happen: a transaction with status Success, Pending or Failure (and its amount,
fee and method), or the exact :class:`Refusal`.

After every step: every prepaid balance is ≥ 0 and equals the model, every debt equals the
model and is ≤ the credit limit, GetTotalPrepaidLiability is the sum of the merchant's posted
prepaid balances with pending fundings reported apart (its ``pending`` is the sum of the
instruments' pending fundings, which are *not* part of ``main``), GetOutstandingDebtBalance is
the sum of the debts (pending settlements apart, likewise), the merchant's and the buyers'
account balances equal the model, every transaction the service lists equals the model's, and
the ledger audit (``penny audit``) is clean.

One database serves all the examples of one test function; each example opens its own merchant
and buyers (unique emails), so the global audit still holds after every step.

Generation leans towards requests that can succeed (funded instruments, amounts that fit, all
of a balance or debt) and towards interaction: a batch often aims several requests at one
instrument (a "billing cycle" settles a credit line and charges it again), and after a clock
advance the next request often aims at what just completed (funding again after a returned
transfer). Examples are few (CI), so this is what makes chains such as fund → pay → refund,
pay → settle → refund and failed funding → fund again happen in most runs.

The marketplace (#19): the merchant is also a marketplace. A second merchant (the seller) gave
it a recipient token with random terms (the largest fixed and variable fee, whether it pays
Penny's fee); marketplace Pays name it, with random MarketplaceFixedFee/MarketplaceVariableFee
and ChargeFeeTo (within the terms or not), and refunds of them give fees back pro rata by
MarketplaceRefundPolicy. Reserves name it too (a marketplace Reserve, mostly one the caller's
payable balance can hold, then a Settle of all or part of it, a Cancel or its expiry, and
refunds of such a Settle with or without the caller's fee's share): the hold is the whole
marketplace journal (the caller's payable pending out, the seller's pending in), a Settle
takes the caller's fee pro rata (``fee * settled // reserved``) and Penny's fee of the settled
amount, borne as the Reserve said, refused when the seller would get nothing or a share would
exceed the hold's; a released or expired reserve reports no fee. The model keeps the seller's
payable balance (and pending in), what the caller's payable has held, and Penny's fees, and
after every step the books must also conserve money: what arrived from outside (the external
funding account's posted movement since the example began) equals the two merchants' payable
balances, Penny's fees and the buyers' balances.

Three bugs the machine found are pinned by focused tests at the end of the file: a
FundPrepaid/SettleDebt whose amount is not above its fee crashed the batch (fixed since: the
merchant now gets nothing and the fee everything), and a Pay accepted after a settlement *at
the same instant* (in one batch) is wrongly refused a refund (the machine tolerates that one
refusal while TOLERATE_SAME_INSTANT_SETTLEMENT is set; its focused test fails until fixed),
and a released (cancelled or expired) marketplace reserve that answered a marketplace fee of 0
but stored its old one, so GetTransaction and a second Cancel reported it (fixed since).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from builders import recipient_token, store
from penny.clock import MICROS_PER_DAY, ManualClock
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import FeeSchedule, Method
from penny.domain.model import (
    AUTHORIZATION_TOKEN_KINDS,
    FeePayer,
    Operation,
    RecipientToken,
    Status,
    TokenKind,
    TokenStatus,
    Transaction,
    UsageLimitTerm,
    UsageLimitType,
)
from penny.domain.parties import Party, PaymentMethod, PaymentMethodKind
from penny.engine.ledger import Ledger
from penny.ledger.model import Leg, NewJournal
from penny.money import Money
from penny.parties import Directory
from penny.sandbox.instruments import postpaid_setup, prepaid_setup, sender_token_setup
from penny.services import subscriptions as subs
from penny.services.factory import Services
from penny.services.payments import (
    CancelRequest,
    FundPrepaidRequest,
    InstrumentSetup,
    PaymentRequest,
    Payments,
    PayRequest,
    RefundRequest,
    ReserveRequest,
    Result,
    SettleDebtRequest,
    SettleRequest,
    WriteOffDebtRequest,
    cancel_request,
    settle_request,
)
from penny.services.subscriptions import DEFAULT_REFUND_REFERENCE, CancelSubscription
from penny.storage.database import Database
from stateful_support import machine_settings

# -- the documented rules, written down here rather than imported --------------------------

HOUR: Final = MICROS_PER_DAY // 24
#: docs/sandbox.md: a fail-later card fails after 1 day; bank transfers answer after 4 days.
CARD_FAILS_AFTER: Final = MICROS_PER_DAY
BANK_ANSWERS_AFTER: Final = 4 * MICROS_PER_DAY
#: The fixed fee schedule of this test (FeeSchedule.flat(card=50, bank=20, balance=5)).
FEES: Final = {Method.card: 50, Method.bank: 20, Method.balance: 5}
#: rules.MAX_AMOUNT_MINOR: $1,000,000.00.
MAX_AMOUNT: Final = 100_000_000
UNKNOWN_ID: Final = "UNKNOWN0000000000000000000000000000"
MINUTE: Final = HOUR // 60
#: docs/decisions.md (#19): an unsettled reserve expires after 7 days (in minutes).
RESERVE_TIMEOUT: Final = 7 * 24 * 60
#: The transactions that charged an instrument (a Refund gives them back).
CHARGES: Final = (Operation.pay, Operation.settle)
#: Set to False once a Pay accepted after a settlement at the same instant (one batch) may be
#: refunded (test_refund_of_a_pay_accepted_after_a_settlement_in_the_same_batch); until then
#: the machine tolerates the refusal for exactly those Pays.
TOLERATE_SAME_INSTANT_SETTLEMENT: Final = False

Source = Literal["card", "declined", "fail_later", "bank", "returned", "balance"]
#: What instruments draw their money from: a succeeding card most often.
SOURCE_CHOICES: Final[tuple[Source, ...]] = (
    "card",
    "card",
    "card",
    "balance",
    "bank",
    "fail_later",
    "declined",
    "returned",
)
RAIL: Final[dict[Source, Method]] = {
    "card": Method.card,
    "declined": Method.card,
    "fail_later": Method.card,
    "bank": Method.bank,
    "returned": Method.bank,
    "balance": Method.balance,
}
#: Pending sources: (delay until the answer, whether it is a success).
PENDING: Final[dict[Source, tuple[int, bool]]] = {
    "fail_later": (CARD_FAILS_AFTER, False),
    "bank": (BANK_ANSWERS_AFTER, True),
    "returned": (BANK_ANSWERS_AFTER, False),
}


#: Pays with SingleUse, MultiUse and Recurring tokens (issue #19): a card answers Pending and
#: then its final answer at the next completion; otherwise as the sources above.
AUTH_PENDING: Final[dict[Source, tuple[int, bool]]] = {
    "card": (0, True),
    "declined": (0, False),
    "fail_later": (CARD_FAILS_AFTER, False),
    "bank": (BANK_ANSWERS_AFTER, True),
    "returned": (BANK_ANSWERS_AFTER, False),
}
#: docs/decisions.md (#19): a SingleUse token is valid 3 hours, a MultiUse token a year.
SINGLE_USE_HOURS: Final = 3


def sometimes(values: st.SearchStrategy[int]) -> st.SearchStrategy[int | None]:
    """``values`` one time in three, else None (so limits stay out of the way mostly)."""
    return st.integers(0, 2).flatmap(lambda pick: values if pick == 2 else st.none())


def usd(minor: int) -> Money:
    return Money(minor, "USD")


def fee_of(source: Source, amount: int) -> int:
    """The fee of a money movement: the flat fee of its rail, never more than the amount."""
    return min(FEES[RAIL[source]], amount)


# -- the store -----------------------------------------------------------------------------


@dataclass
class Stack:
    db: Database
    clock: ManualClock
    ledger: Ledger
    directory: Directory
    payments: Payments
    services: Services


@contextmanager
def open_stack(database_url: str) -> Iterator[Stack]:
    clock = ManualClock()
    fees = FeeSchedule.flat(card=50, bank=20, balance=5)
    with store(database_url, clock=clock, fees=fees) as services:
        yield Stack(
            services.database,
            clock,
            services.ledger,
            services.directory,
            services.payments,
            services,
        )


@dataclass
class Buyer:
    party: Party
    methods: dict[Source, PaymentMethod]


def open_buyer(stack: Stack, tag: str) -> Buyer:
    directory = stack.directory
    party = directory.create_personal("Bea Buyer", f"bea-{tag}@example.com", "correct horse")
    # Cards valid well past anything an example (or a whole run) can advance the clock to.
    year = datetime.fromtimestamp(stack.clock.now_us() / 1_000_000, UTC).year + 15
    balance = next(
        m for m in directory.payment_methods(party.id) if m.kind is PaymentMethodKind.balance
    )
    methods: dict[Source, PaymentMethod] = {
        "card": directory.add_card(party.id, "4111111111111111", 12, year),
        "declined": directory.add_card(party.id, "4000000000000002", 12, year),
        "fail_later": directory.add_card(party.id, "4000000000000341", 12, year),
        "bank": directory.add_bank(party.id, "110000000", "000123456789"),
        "returned": directory.add_bank(party.id, "110000000", "000111110000"),
        "balance": balance,
    }
    return Buyer(party, methods)


# -- the reference model -------------------------------------------------------------------


@dataclass(eq=False)
class MInstrument:
    setup: InstrumentSetup
    prepaid: bool
    buyer: int
    source: Source
    valid_from: int
    valid_until: int | None
    funding_limit: int | None = None
    credit_limit: int = 0
    global_limit: int | None = None
    min_charge: int | None = None
    max_charge: int | None = None
    #: Prepaid: the posted balance (what may be spent).
    available: int = 0
    #: Postpaid: the posted debt.
    debt: int = 0
    #: Prepaid: fundings still pending; postpaid: settlements still pending.
    pending: int = 0
    #: Prepaid: everything funded that has not failed (success and pending).
    funded: int = 0
    #: Postpaid: every Pay charged, less refunds (and what reserves hold).
    charged: int = 0
    #: What open reserves hold: off the prepaid balance, or within the credit line.
    held: int = 0
    #: When the last settlement was accepted (to tell Pays accepted at the same instant).
    last_settled_at: int | None = None

    @property
    def id(self) -> str:
        return self.setup.instrument.id


@dataclass(eq=False)
class MAuth(MInstrument):
    """The authorization of a SingleUse, MultiUse or Recurring token (issue #19); its
    ``setup`` names the token twice (sender and second), ``max_charge`` and ``global_limit``
    are the token's, ``charged`` what its accepted payments add up to (less failures and
    refunds)."""

    kind: TokenKind = TokenKind.multi_use
    #: At most this many payments per day from the token's start (a MultiUse Count limit of
    #: "1 Day", a Recurring token's period of "1 Day"), or None.
    per_day: int | None = None
    spent: bool = False
    uses: list[int] = field(default_factory=list)

    def used_today(self, now: int) -> int:
        start = self.valid_from + (now - self.valid_from) // MICROS_PER_DAY * MICROS_PER_DAY
        return sum(1 for at in self.uses if at >= start)


@dataclass(eq=False)
class MToken:
    kind: TokenKind
    instrument: MInstrument
    active: bool = True


@dataclass(eq=False)
class MTxn:
    id: str
    operation: Operation
    instrument: MInstrument
    amount: int
    fee: int
    method: Method
    status: Status
    #: What a pending one becomes, and when.
    completes_at: int | None = None
    completes_ok: bool = False
    refunded: int = 0
    #: A Pay: a settlement has been accepted on its instrument since.
    settled_since: bool = False
    #: A Pay: accepted after a settlement at the same instant (the tolerated bug).
    same_instant_as_settlement: bool = False
    #: A marketplace Pay (#19): the caller's fee, Penny's fee and who bore it.
    marketplace: bool = False
    marketplace_fee: int = 0
    penny_fee: int = 0
    fee_payer: FeePayer = FeePayer.recipient
    #: A marketplace Reserve: what its hold takes from the caller's payable (pending out) and
    #: gives the seller (pending in) until Settle, Cancel or expiry.
    held_out: int = 0
    held_in: int = 0
    #: A Settle: its reserve.
    parent: str | None = None


class RefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass
class Expect:
    """What must happen to one request."""

    refusal: Refusal | None = None
    #: A same-content retry: the id of the transaction it must return.
    replay: str | None = None
    status: Status | None = None
    operation: Operation | None = None
    instrument: MInstrument | None = None
    amount: int = 0
    fee: int = 0
    method: Method | None = None
    parent: str | None = None
    apply: Callable[[Transaction], None] | None = None
    #: A refusal tolerated instead of the expected transaction (known bug, see above).
    tolerated: Refusal | None = None
    #: A marketplace Pay or its refund: the seller is the recipient.
    seller: bool = False
    #: A Cancel: the answer is this existing transaction (no new one), with ``status``.
    existing: str | None = None


@dataclass
class Model:
    instruments: dict[str, MInstrument] = field(default_factory=dict)
    tokens: dict[str, MToken] = field(default_factory=dict)
    txns: dict[str, MTxn] = field(default_factory=dict)
    #: Accepted requests by CallerReference: the request and its transaction id.
    remembered: dict[str, tuple[PaymentRequest, str]] = field(default_factory=dict)
    payable: int = 0
    payable_pending: int = 0
    balances: list[int] = field(default_factory=list)
    #: The marketplace (#19): the seller's recipient token, its payable balance, Penny's fees.
    recipient: RecipientToken | None = None
    seller_payable: int = 0
    penny_fees: int = 0
    #: What marketplace reserves hold: out of the caller's payable (its pending debits, not
    #: available to spend) and into the seller's (its pending credits).
    payable_held: int = 0
    seller_pending: int = 0

    @property
    def payable_available(self) -> int:
        """The caller's payable balance less what marketplace reserves hold on it."""
        return self.payable - self.payable_held

    def add(self, instrument: MInstrument) -> None:
        self.instruments[instrument.id] = instrument
        setup = instrument.setup
        self.tokens[setup.sender_token.id] = MToken(setup.sender_token.kind, instrument)
        self.tokens[setup.second_token.id] = MToken(setup.second_token.kind, instrument)

    def prepaids(self) -> list[MInstrument]:
        return [i for i in self.instruments.values() if i.prepaid]

    def credits(self) -> list[MInstrument]:
        return [i for i in self.instruments.values() if not i.prepaid and not isinstance(i, MAuth)]

    def auths(self) -> list[MAuth]:
        return [i for i in self.instruments.values() if isinstance(i, MAuth)]

    # -- deciding ----------------------------------------------------------------------

    def decide(self, request: PaymentRequest, now: int) -> Expect:
        prior = self.remembered.get(request.caller_reference)
        if prior is not None:
            if prior[0] == request:
                return Expect(replay=prior[1])
            return Expect(refusal=Refusal.duplicate_request)
        decider = DECIDERS.get(type(request))
        if decider is None:
            raise AssertionError(f"the machine never drafts a {type(request).__name__}")
        try:
            return decider(self, request, now)
        except RefusedError as refused:
            return Expect(refusal=refused.refusal)

    def _token(self, token_id: str, kinds: set[TokenKind]) -> MToken:
        token = self.tokens.get(token_id)
        if token is None:
            raise RefusedError(Refusal.unknown_token)
        if token.kind not in kinds:
            raise RefusedError(Refusal.wrong_token_type)
        if not token.active:
            raise RefusedError(Refusal.token_not_active)
        return token

    def _transaction(self, transaction_id: str) -> MTxn:
        txn = self.txns.get(transaction_id)
        if txn is None:
            raise RefusedError(Refusal.unknown_transaction)
        return txn

    @staticmethod
    def _valid(instrument: MInstrument, now: int) -> None:
        if now < instrument.valid_from:
            raise RefusedError(Refusal.instrument_not_yet_valid)
        if instrument.valid_until is not None and now >= instrument.valid_until:
            raise RefusedError(Refusal.instrument_expired)

    @staticmethod
    def _amount(amount: Money) -> int:
        if amount.currency != "USD":
            raise RefusedError(Refusal.invalid_currency)
        if amount.minor <= 0:
            raise RefusedError(Refusal.invalid_amount)
        if amount.minor > MAX_AMOUNT:
            raise RefusedError(Refusal.amount_out_of_range)
        return amount.minor

    def _record(self, txn: Transaction, expect: Expect, **extra: int | bool | str) -> MTxn:
        assert expect.operation is not None
        assert expect.instrument is not None
        assert expect.method is not None
        assert expect.status is not None
        made = MTxn(
            txn.id,
            expect.operation,
            expect.instrument,
            expect.amount,
            expect.fee,
            expect.method,
            expect.status,
        )
        for name, value in extra.items():
            setattr(made, name, value)
        self.txns[txn.id] = made
        return made

    def _pay(self, request: PayRequest, now: int) -> Expect:
        market = request.marketplace_fixed_fee or request.marketplace_variable_fee
        if request.recipient_token_id is None and market:
            raise RefusedError(Refusal.not_marketplace_app)
        if request.recipient_token_id is not None:
            return self._marketplace_pay(request, now)
        found = self.tokens.get(request.sender_token_id)
        if found is not None and found.kind in AUTHORIZATION_TOKEN_KINDS:
            return self._auth_pay(request, now)
        inst, amount = self._sender(request, now)
        method = Method.prepaid if inst.prepaid else Method.debt
        expect = Expect(
            status=Status.success,
            operation=Operation.pay,
            instrument=inst,
            amount=amount,
            method=method,
        )
        if inst.prepaid:
            if amount > inst.available:
                raise RefusedError(Refusal.insufficient_balance)

            def spend(txn: Transaction) -> None:
                inst.available -= amount
                self._record(txn, expect)

            expect.apply = spend
            return expect
        self._script(inst, amount)
        if inst.global_limit is not None and inst.charged + amount > inst.global_limit:
            raise RefusedError(Refusal.exceeds_instrument_limits)
        if inst.debt + inst.held + amount > inst.credit_limit:
            raise RefusedError(Refusal.exceeds_instrument_limits)

        def owe(txn: Transaction) -> None:
            inst.debt += amount
            inst.charged += amount
            self._record(txn, expect, same_instant_as_settlement=inst.last_settled_at == now)

        expect.apply = owe
        return expect

    def _sender(self, request: PayRequest, now: int) -> tuple[MInstrument, int]:
        """A Pay's sender token (prepaid or credit), its valid instrument and the amount."""
        kinds = {TokenKind.prepaid_sender, TokenKind.credit_sender}
        inst = self._token(request.sender_token_id, kinds).instrument
        self._valid(inst, now)
        return inst, self._amount(request.amount)

    @staticmethod
    def _script(inst: MInstrument, amount: int) -> None:
        """A credit sender token's script: its minimum and maximum charge."""
        if inst.min_charge is not None and amount < inst.min_charge:
            raise RefusedError(Refusal.amount_below_minimum)
        if inst.max_charge is not None and amount > inst.max_charge:
            raise RefusedError(Refusal.amount_above_maximum)

    def _split(self, request: PayRequest, amount: int) -> tuple[int, int, FeePayer, int, int]:
        """The recipient token's terms (docs/decisions.md, #19): the caller's fee, Penny's
        (the ABT rule, flat $0.05 here, never more than the amount), who bears it, what the
        seller gets and what the caller pays out of its payable balance."""
        terms = self.recipient
        assert terms is not None
        fixed, variable = request.marketplace_fixed_fee, request.marketplace_variable_fee
        if fixed > terms.max_fixed_fee or variable > terms.max_variable_fee:
            raise RefusedError(Refusal.marketplace_fee_too_high)
        payer = request.charge_fee_to
        if payer is FeePayer.recipient and not terms.recipient_pays_fee:
            raise RefusedError(Refusal.recipient_does_not_pay_fees)
        if payer is None:
            payer = FeePayer.recipient if terms.recipient_pays_fee else FeePayer.caller
        scaled = amount * variable
        marketplace_fee = fixed + scaled // 10_000 + (1 if scaled % 10_000 * 2 >= 10_000 else 0)
        penny_fee = min(FEES[Method.balance], amount)
        by_recipient = penny_fee if payer is FeePayer.recipient else 0
        seller_gets = amount - marketplace_fee - by_recipient
        if seller_gets <= 0:
            raise RefusedError(Refusal.fees_exceed_amount)
        caller_pays = amount - marketplace_fee + (penny_fee - by_recipient)
        return marketplace_fee, penny_fee, payer, seller_gets, caller_pays

    def _marketplace_pay(self, request: PayRequest, now: int) -> Expect:
        if self.recipient is None or request.recipient_token_id != self.recipient.id:
            raise RefusedError(Refusal.unknown_recipient_token)
        inst, amount = self._sender(request, now)
        if not inst.prepaid:
            self._script(inst, amount)
        marketplace_fee, penny_fee, payer, seller_gets, caller_pays = self._split(request, amount)
        over = inst.global_limit is not None and inst.charged + amount > inst.global_limit
        if not inst.prepaid and over:
            raise RefusedError(Refusal.exceeds_instrument_limits)
        # The ledger: balances (the buyer's prepaid value, the caller's payable) come before
        # the credit limit.
        if caller_pays > self.payable_available or (inst.prepaid and amount > inst.available):
            raise RefusedError(Refusal.insufficient_balance)
        if not inst.prepaid and inst.debt + inst.held + amount > inst.credit_limit:
            raise RefusedError(Refusal.exceeds_instrument_limits)
        expect = Expect(
            status=Status.success,
            operation=Operation.pay,
            instrument=inst,
            amount=amount,
            fee=penny_fee,
            method=Method.prepaid if inst.prepaid else Method.debt,
            seller=True,
        )

        def pay_seller(txn: Transaction) -> None:
            event("marketplace Pay: Success")
            assert (txn.marketplace_fee, txn.fees_paid_by) == (marketplace_fee, payer)
            self._spend(inst, amount)
            self.payable -= caller_pays
            self.seller_payable += seller_gets
            self.penny_fees += penny_fee
            self._record(
                txn,
                expect,
                marketplace=True,
                marketplace_fee=marketplace_fee,
                penny_fee=penny_fee,
                same_instant_as_settlement=inst.last_settled_at == now,
            )
            self.txns[txn.id].fee_payer = payer

        expect.apply = pay_seller
        return expect

    def _auth_pay(self, request: PayRequest, now: int) -> Expect:
        token = self._token(request.sender_token_id, set(AUTHORIZATION_TOKEN_KINDS))
        inst = token.instrument
        assert isinstance(inst, MAuth)
        self._valid(inst, now)
        amount = self._amount(request.amount)
        if inst.kind is TokenKind.single_use and inst.spent:
            raise RefusedError(Refusal.token_used_already)
        if inst.max_charge is not None and amount > inst.max_charge:
            raise RefusedError(Refusal.amount_above_maximum)
        if inst.per_day is not None and inst.used_today(now) >= inst.per_day:
            raise RefusedError(Refusal.token_usage_exceeded)
        if inst.global_limit is not None and inst.charged + amount > inst.global_limit:
            raise RefusedError(Refusal.token_usage_exceeded)
        source = inst.source
        if source == "balance" and self.balances[inst.buyer] < amount:
            raise RefusedError(Refusal.insufficient_balance)
        fee = fee_of(source, amount)
        pending = AUTH_PENDING.get(source)
        expect = Expect(
            status=Status.success if pending is None else Status.pending,
            operation=Operation.pay,
            instrument=inst,
            amount=amount,
            fee=fee,
            method=RAIL[source],
        )

        def charge(txn: Transaction) -> None:
            inst.spent = True
            inst.uses.append(now)
            inst.charged += amount
            if pending is None:
                self.balances[inst.buyer] -= amount
                self.payable += amount - fee
                self.penny_fees += fee
                self._record(txn, expect)
            else:
                self._record(txn, expect, completes_at=now + pending[0], completes_ok=pending[1])
                self.payable_pending += amount - fee

        expect.apply = charge
        return expect

    def _fund(self, request: FundPrepaidRequest, now: int) -> Expect:
        token = self._token(request.funding_token_id, {TokenKind.funding})
        inst = self.instruments.get(request.instrument_id)
        if inst is None or not inst.prepaid:
            raise RefusedError(Refusal.unknown_instrument)
        self._valid(inst, now)
        if token.instrument is not inst:
            raise RefusedError(Refusal.token_instrument_mismatch)
        amount = self._amount(request.amount)
        if inst.funding_limit is not None and inst.funded + amount > inst.funding_limit:
            raise RefusedError(Refusal.funding_limit_exceeded)
        return self._charge(inst, amount, Operation.fund_prepaid, now)

    def _settle(self, request: SettleDebtRequest, now: int) -> Expect:
        token = self._token(request.settlement_token_id, {TokenKind.settlement})
        inst = self.instruments.get(request.instrument_id)
        if inst is None or inst.prepaid or isinstance(inst, MAuth):
            raise RefusedError(Refusal.unknown_instrument)
        # No validity check: an expired instrument's debt may still be settled.
        if token.instrument is not inst:
            raise RefusedError(Refusal.token_instrument_mismatch)
        amount = self._amount(request.amount)
        return self._charge(inst, amount, Operation.settle_debt, now)

    def _charge(self, inst: MInstrument, amount: int, operation: Operation, now: int) -> Expect:
        source = inst.source
        fee = fee_of(source, amount)
        expect = Expect(
            operation=operation,
            instrument=inst,
            amount=amount,
            fee=fee,
            method=RAIL[source],
        )
        if source == "declined":
            expect.status = Status.failure

            def decline(txn: Transaction) -> None:
                self._record(txn, expect)  # recorded, but nothing moves

            expect.apply = decline
            return expect
        if source == "balance" and self.balances[inst.buyer] < amount:
            raise RefusedError(Refusal.insufficient_balance)
        settling = operation is Operation.settle_debt
        if settling and inst.pending + amount > inst.debt:
            raise RefusedError(Refusal.settle_exceeds_debt)
        pending = PENDING.get(source)
        expect.status = Status.success if pending is None else Status.pending

        def move(txn: Transaction) -> None:
            if source == "balance":
                self.balances[inst.buyer] -= amount
            if settling:
                inst.last_settled_at = now
                for other in self.txns.values():
                    if other.instrument is inst and other.operation in CHARGES:
                        other.settled_since = True
            else:
                inst.funded += amount
            if pending is None:
                self._record(txn, expect)
                self._post(inst, amount, fee, settling)
            else:
                self._record(txn, expect, completes_at=now + pending[0], completes_ok=pending[1])
                inst.pending += amount
                self.payable_pending += amount - fee

        expect.apply = move
        return expect

    def _post(self, inst: MInstrument, amount: int, fee: int, settling: bool) -> None:
        if settling:
            inst.debt -= amount
        else:
            inst.available += amount
        self.payable += amount - fee
        self.penny_fees += fee

    def _write_off(self, request: WriteOffDebtRequest, now: int) -> Expect:
        inst = self.instruments.get(request.instrument_id)
        if inst is None or inst.prepaid or isinstance(inst, MAuth):
            raise RefusedError(Refusal.unknown_instrument)
        amount = self._amount(request.amount)
        if inst.pending + amount > inst.debt:
            raise RefusedError(Refusal.settle_exceeds_debt)
        expect = Expect(
            status=Status.success,
            operation=Operation.write_off_debt,
            instrument=inst,
            amount=amount,
            method=Method.debt,
        )

        def forgive(txn: Transaction) -> None:
            inst.debt -= amount
            self._record(txn, expect)

        expect.apply = forgive
        return expect

    def _refund(self, request: RefundRequest, now: int) -> Expect:
        original = self._transaction(request.transaction_id)
        if original.operation is Operation.reserve and original.status is Status.reserved:
            raise RefusedError(Refusal.invalid_transaction_state)
        if original.operation not in CHARGES:
            raise RefusedError(Refusal.not_refundable)
        if original.status is Status.pending:  # a Pay with an authorization token (#19)
            raise RefusedError(Refusal.original_not_complete)
        if original.status is not Status.success:  # failed, or cancelled while pending
            raise RefusedError(Refusal.original_failed)
        left = original.amount - original.refunded
        if left <= 0:
            raise RefusedError(Refusal.fully_refunded)
        amount = left if request.amount is None else self._amount(request.amount)
        if amount > left:
            raise RefusedError(Refusal.refund_exceeds_original)
        inst = original.instrument
        if isinstance(inst, MAuth):
            return self._auth_refund(original, inst, amount)
        if not inst.prepaid and original.settled_since:
            raise RefusedError(Refusal.debt_already_settled)
        shares = self._refund_shares(original, amount, request.refund_marketplace_fee)
        if not inst.prepaid and inst.pending + amount > inst.debt:
            raise RefusedError(Refusal.debt_already_settled)
        expect = self._refund_expect(original, inst, amount)
        if (
            TOLERATE_SAME_INSTANT_SETTLEMENT
            and not inst.prepaid
            and original.same_instant_as_settlement
        ):
            expect.tolerated = Refusal.debt_already_settled

        def give_back(txn: Transaction) -> None:
            seller_back, caller_back, penny_back = shares
            if original.marketplace:
                event("marketplace Refund: Success")
            self.seller_payable -= seller_back
            self.payable += caller_back
            self.penny_fees -= penny_back
            original.refunded += amount
            if inst.prepaid:
                inst.available += amount
            else:
                inst.debt -= amount
                inst.charged = max(0, inst.charged - amount)
            self._record(txn, expect)

        expect.apply = give_back
        return expect

    def _refund_shares(self, original: MTxn, amount: int, with_fee: bool) -> tuple[int, int, int]:
        """A marketplace Pay's refund: what the seller gives back, what the caller gets back
        and Penny's fee given back (pro rata, rounded down; the caller's fee too under
        MasterAndMarketplaceTxn); all zero for a plain Pay. The seller's payable balance must
        cover its part (the ledger's check, before the debt's bound)."""
        if not original.marketplace:
            return 0, 0, 0
        penny_back = original.penny_fee * amount // original.amount
        market_back = original.marketplace_fee * amount // original.amount if with_fee else 0
        seller_back = amount - market_back
        caller_back = amount - market_back
        if original.fee_payer is FeePayer.recipient:
            seller_back -= penny_back
        else:
            caller_back += penny_back
        if seller_back > self.seller_payable:
            raise RefusedError(Refusal.insufficient_balance)
        return seller_back, caller_back, penny_back

    # -- Reserve, Settle, Cancel (issue #19) ----------------------------------------------

    def _reserve(self, request: ReserveRequest, now: int) -> Expect:
        """Pay's checks and refusals; the amount is held, not spent (docs/decisions.md). A
        marketplace Reserve (#19) holds the marketplace Pay's whole journal: the caller's
        payable is held what it would pay, the seller's gets it pending in, Penny's fee is
        pending too (the Reserve reports the fees of the whole amount)."""
        pay = self._pay(request, now)
        assert pay.instrument is not None
        inst, amount = pay.instrument, pay.amount
        timeout = RESERVE_TIMEOUT if request.timeout_minutes is None else request.timeout_minutes
        expect = replace(pay, status=Status.reserved, operation=Operation.reserve)
        market: dict[str, int | bool | str] = {}
        if pay.seller:
            marketplace_fee, penny_fee, payer, seller_gets, caller_pays = self._split(
                request, amount
            )
            market = {
                "marketplace": True,
                "marketplace_fee": marketplace_fee,
                "penny_fee": penny_fee,
                "held_out": caller_pays,
                "held_in": seller_gets,
            }

        def hold(txn: Transaction) -> None:
            inst.held += amount
            if inst.prepaid:
                inst.available -= amount
            else:
                inst.charged += amount
            made = self._record(txn, expect, completes_at=now + timeout * MINUTE, **market)
            if market:
                event("marketplace Reserve: Reserved")
                assert (txn.marketplace_fee, txn.fees_paid_by) == (marketplace_fee, payer)
                assert txn.recipient_token_id == request.recipient_token_id
                made.fee_payer = payer
                self.payable_held += caller_pays
                self.seller_pending += seller_gets

        expect.apply = hold
        return expect

    @staticmethod
    def _spend(inst: MInstrument, amount: int) -> None:
        """A charge booked: off the prepaid value, or onto the debt and the charged total."""
        if inst.prepaid:
            inst.available -= amount
        else:
            inst.debt += amount
            inst.charged += amount

    def _release(self, txn: MTxn) -> None:
        """A reserve's hold given back whole (Cancel, expiry; Settle before it charges)."""
        inst = txn.instrument
        self.payable_held -= txn.held_out
        self.seller_pending -= txn.held_in
        inst.held -= txn.amount
        if inst.prepaid:
            inst.available += txn.amount
        else:
            inst.charged -= txn.amount

    def _settle_reserve(self, request: SettleRequest, now: int) -> Expect:
        reserve = self._transaction(request.reserve_transaction_id)
        assert reserve.completes_at is not None or reserve.status is not Status.reserved
        if reserve.status is not Status.reserved or now >= (reserve.completes_at or 0):
            raise RefusedError(Refusal.invalid_transaction_state)
        amount = reserve.amount if request.amount is None else self._amount(request.amount)
        if amount > reserve.amount:
            raise RefusedError(Refusal.settle_exceeds_reserve)
        inst = reserve.instrument
        expect = Expect(
            status=Status.success,
            operation=Operation.settle,
            instrument=inst,
            amount=amount,
            method=reserve.method,
            parent=reserve.id,
        )
        if reserve.marketplace:
            return self._settle_marketplace_reserve(reserve, amount, expect)

        def charge(txn: Transaction) -> None:
            self._release(reserve)
            reserve.status = Status.success
            self._spend(inst, amount)
            self._record(txn, expect, parent=reserve.id)

        expect.apply = charge
        return expect

    def _settle_marketplace_reserve(self, reserve: MTxn, amount: int, expect: Expect) -> Expect:
        """Settle of a marketplace reserve (docs/decisions.md, #19): the marketplace Pay of
        the settled amount, the caller's fee pro rata (rounded down), Penny's fee (the balance
        rule) of the settled amount, borne as the Reserve said; refused when the seller would
        get nothing (FeesExceedAmount), or when a share would exceed what the hold holds."""
        marketplace_fee = reserve.marketplace_fee * amount // reserve.amount
        penny_fee = min(FEES[Method.balance], amount)
        payer = reserve.fee_payer
        by_recipient = penny_fee if payer is FeePayer.recipient else 0
        seller_gets = amount - marketplace_fee - by_recipient
        if seller_gets <= 0:
            raise RefusedError(Refusal.fees_exceed_amount)
        caller_pays = amount - marketplace_fee + (penny_fee - by_recipient)
        # The Settle's legs must mirror the hold's, leg by leg (no leg larger, none dropped).
        if not (
            0 < caller_pays <= reserve.held_out
            and seller_gets <= reserve.held_in
            and 0 < penny_fee <= reserve.penny_fee
        ):
            raise RefusedError(Refusal.invalid_amount)
        inst = reserve.instrument
        expect.fee, expect.seller = penny_fee, True

        def charge(txn: Transaction) -> None:
            event("marketplace Settle: " + ("whole" if amount == reserve.amount else "partial"))
            assert (txn.marketplace_fee, txn.fees_paid_by) == (marketplace_fee, payer)
            assert txn.recipient_token_id == (self.recipient and self.recipient.id)
            self._release(reserve)
            reserve.status = Status.success
            self._spend(inst, amount)
            self.payable -= caller_pays
            self.seller_payable += seller_gets
            self.penny_fees += penny_fee
            made = self._record(
                txn,
                expect,
                parent=reserve.id,
                marketplace=True,
                marketplace_fee=marketplace_fee,
                penny_fee=penny_fee,
            )
            made.fee_payer = payer

        expect.apply = charge
        return expect

    def _cancel(self, request: CancelRequest, now: int) -> Expect:
        txn = self._transaction(request.transaction_id)
        expect = Expect(existing=txn.id, status=Status.cancelled)
        if txn.status is Status.cancelled:
            expect.apply = lambda _txn: None
            return expect
        if txn.status not in (Status.reserved, Status.pending):
            raise RefusedError(Refusal.invalid_transaction_state)
        expect.apply = lambda _txn: self._cancelled(txn)
        return expect

    def _cancelled(self, txn: MTxn) -> None:
        """``txn`` (Reserved, or a pending charge) cancelled: its hold released."""
        if txn.status is Status.reserved:
            self._release(txn)
        else:  # a pending funding, settlement or Pay that will never arrive
            inst = txn.instrument
            self.payable_pending -= txn.amount - txn.fee
            if isinstance(inst, MAuth):
                inst.charged -= txn.amount  # as a failed Pay: off the charged total
            else:
                inst.pending -= txn.amount
            if txn.operation is Operation.fund_prepaid:
                inst.funded -= txn.amount
        txn.status = Status.cancelled

    @staticmethod
    def _refund_expect(original: MTxn, inst: MInstrument, amount: int) -> Expect:
        return Expect(
            status=Status.success,
            operation=Operation.refund,
            instrument=inst,
            amount=amount,
            method=original.method,
            parent=original.id,
            seller=original.marketplace,
        )

    def _auth_refund(self, original: MTxn, inst: MAuth, amount: int) -> Expect:
        """Back to the payment method, from the payable less the fee's share (#19)."""
        fee_back = original.fee * amount // original.amount
        if self.payable_available < amount - fee_back:
            raise RefusedError(Refusal.insufficient_balance)
        expect = self._refund_expect(original, inst, amount)

        def give_back(txn: Transaction) -> None:
            original.refunded += amount
            self.payable -= amount - fee_back
            self.penny_fees -= fee_back
            if inst.source == "balance":
                self.balances[inst.buyer] += amount
            inst.charged = max(0, inst.charged - amount)
            self._record(txn, expect)

        expect.apply = give_back
        return expect

    # -- time ----------------------------------------------------------------------------

    def complete(self, now: int) -> dict[str, Status]:
        """Finish the pending transactions whose answer is due, and expire the reserves past
        their timeout; their new statuses."""
        done: dict[str, Status] = {}
        for txn in self.txns.values():
            if txn.status is Status.reserved and (txn.completes_at or 0) <= now:
                self._release(txn)
                txn.status = done[txn.id] = Status.cancelled
                continue
            if txn.status is not Status.pending:
                continue
            assert txn.completes_at is not None
            if txn.completes_at > now:
                continue
            inst = txn.instrument
            settling = txn.operation is Operation.settle_debt
            inst.pending -= txn.amount
            self.payable_pending -= txn.amount - txn.fee
            if txn.completes_ok:
                txn.status = Status.success
                self._post(inst, txn.amount, txn.fee, settling)
            else:
                txn.status = Status.failure
                if isinstance(inst, MAuth):
                    inst.charged -= txn.amount  # a failed Pay leaves the charged total
                elif not settling:
                    inst.funded -= txn.amount  # a failed funding gives its room back
            done[txn.id] = txn.status
        return done


#: What the model decides for each kind of request (the exact type: a Reserve is not a Pay).
DECIDERS: Final[dict[type[PaymentRequest], Callable[[Model, Any, int], Expect]]] = {
    ReserveRequest: Model._reserve,
    SettleRequest: Model._settle_reserve,
    CancelRequest: Model._cancel,
    PayRequest: Model._pay,
    FundPrepaidRequest: Model._fund,
    SettleDebtRequest: Model._settle,
    WriteOffDebtRequest: Model._write_off,
    RefundRequest: Model._refund,
}


# -- the machine ---------------------------------------------------------------------------

DraftKind = Literal[
    "fund",
    "pay",
    "market",
    "auth_pay",
    "settle",
    "write_off",
    "refund",
    "retry",
    "billing_cycle",
    "reserve",
    "settle_reserve",
    "cancel",
]
#: The kinds of single requests, Pay and FundPrepaid more often.
REQUEST_KINDS: Final[tuple[DraftKind, ...]] = (
    "pay",
    "pay",
    "market",
    "market",
    "auth_pay",
    "auth_pay",
    "fund",
    "fund",
    "settle",
    "write_off",
    "refund",
    "refund",
    "retry",
    "reserve",
    "reserve",
    "settle_reserve",
    "settle_reserve",
    "cancel",
)
#: The kinds of requests in a batch (every kind); a billing cycle is a SettleDebt and a new
#: postpaid Pay on one credit instrument (the Pay comes after the settlement, at the same
#: instant).
DRAFT_KINDS: Final[tuple[DraftKind, ...]] = get_args(DraftKind)


class PaymentsMachine(RuleBasedStateMachine):
    stack: Stack

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.ready = False
        self.tag = uuid.uuid4().hex[:12]
        self.counter = 0
        self.buyers: list[Buyer] = []
        self.history: list[PaymentRequest] = []
        self.merchant_id = ""
        self.seller_id = ""
        #: Posted balances of the external funding and fee accounts when the example began.
        self.baseline = (0, 0)
        self.batching = False
        self.focus: MInstrument | None = None
        #: The model's transactions' statuses when the batch being checked began.
        self.batch_began: dict[str, Status] = {}

    # -- helpers -------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.stack.clock.now_us()

    def ref(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def amount(self, data: st.DataObject, anchors: list[int], fit: int = 0) -> Money:
        """Mostly a valid amount (up to ``fit`` when that is positive: what the state allows),
        often one of ``anchors`` (boundaries of the state), sometimes an invalid one."""
        kind = data.draw(st.integers(0, 11), label="amount kind")
        if kind <= 2 and fit > 0:
            return usd(data.draw(st.integers(1, fit)))
        if kind <= 4 and fit > 0:
            return usd(fit)  # all of it: the whole balance, the whole debt, up to the limit
        if kind <= 7:
            return usd(data.draw(st.integers(1, 6000)))
        if kind <= 9 and anchors:
            return usd(max(1, data.draw(st.sampled_from(anchors))))
        if kind == 10:
            return Money(data.draw(st.integers(1, 6000)), "EUR")
        if kind == 11:
            return usd(data.draw(st.sampled_from([0, -1, MAX_AMOUNT + 1])))
        return usd(data.draw(st.integers(1, 30_000)))

    def valid(self, instrument: MInstrument) -> bool:
        until = instrument.valid_until
        return instrument.valid_from <= self.now and (until is None or self.now < until)

    def pick(
        self,
        data: st.DataObject,
        instruments: list[MInstrument],
        good: Callable[[MInstrument], bool],
    ) -> MInstrument:
        """An instrument, three times in four one where the request can succeed (if any); often
        the focus, when there is one: in a batch the instrument of its first request, after a
        completion the instrument of what completed (so that requests interact)."""
        focus = self.focus
        if focus is not None and focus in instruments and data.draw(st.booleans(), label="focus"):
            return focus
        usable = [i for i in instruments if good(i)]
        if usable and data.draw(st.integers(0, 3), label="usable instrument") < 3:
            chosen = data.draw(st.sampled_from(usable), label="instrument")
        else:
            chosen = data.draw(st.sampled_from(instruments), label="instrument")
        if self.batching and focus is None:
            self.focus = chosen
        return chosen

    def setup_instrument(self, data: st.DataObject, prepaid: bool) -> None:
        stack, now = self.stack, self.now
        buyer_index = data.draw(st.integers(0, len(self.buyers) - 1), label="buyer")
        buyer = self.buyers[buyer_index]
        source = data.draw(st.sampled_from(SOURCE_CHOICES), label="source")
        method_id = buyer.methods[source].id
        validity = data.draw(st.integers(0, 7), label="validity")
        valid_from, valid_until = now, None
        if validity == 6:
            valid_until = now + data.draw(st.integers(1, 72)) * HOUR  # ends soon
        elif validity == 7:
            valid_from = now + data.draw(st.integers(1, 24)) * HOUR  # not yet valid
        refs = (self.ref("setup"), self.ref("setup"))
        if prepaid:
            limit = data.draw(
                st.none() | st.integers(1_000, 20_000) | st.integers(200, 3_000),
                label="funding limit",
            )
            setup = stack.payments.setup_prepaid(
                prepaid_setup(
                    self.merchant_id,
                    buyer.party.id,
                    method_id,
                    refs,
                    funding_limit=None if limit is None else usd(limit),
                    valid_from=valid_from,
                    valid_until=valid_until,
                )
            )
            instrument = MInstrument(
                setup, True, buyer_index, source, valid_from, valid_until, funding_limit=limit
            )
        else:
            credit = data.draw(st.integers(500, 20_000), label="credit limit")
            total = data.draw(sometimes(st.integers(100, credit + 2_000)), label="global limit")
            low = data.draw(sometimes(st.integers(1, 300)), label="min charge")
            high = data.draw(sometimes(st.integers(300, 10_000)), label="max charge")
            setup = stack.payments.setup_postpaid(
                postpaid_setup(
                    self.merchant_id,
                    buyer.party.id,
                    method_id,
                    refs,
                    credit_limit=usd(credit),
                    global_amount_limit=None if total is None else usd(total),
                    min_charge=None if low is None else usd(low),
                    max_charge=None if high is None else usd(high),
                    valid_from=valid_from,
                    valid_until=valid_until,
                )
            )
            instrument = MInstrument(
                setup,
                False,
                buyer_index,
                source,
                valid_from,
                valid_until,
                credit_limit=credit,
                global_limit=total,
                min_charge=low,
                max_charge=high,
            )
        assert setup.instrument.sender_id == buyer.party.id
        self.model.add(instrument)

    def submit(self, requests: list[PaymentRequest]) -> list[Result]:
        """Submit one batch and check every result against the model, in order."""
        self.stack.clock.advance(1)  # time moves between calls, as a real clock's does
        now = self.now
        self.batch_began = {t.id: t.status for t in self.model.txns.values()}
        results = self.stack.payments.submit(requests)
        assert len(results) == len(requests)
        for request, result in zip(requests, results, strict=True):
            self.check(request, result, now)
        self.history.extend(requests)
        return results

    def check(self, request: PaymentRequest, result: Result, now: int) -> None:
        expect = self.model.decide(request, now)
        what = f"{type(request).__name__} {request.caller_reference}"
        if expect.replay is not None:
            assert isinstance(result, Transaction), f"{what}: a retry got {result!r}"
            assert result.id == expect.replay, f"{what}: a retry made a new transaction"
            current = self.model.txns[result.id].status
            # A retry in the batch that settles or cancels what it made (a Reserve, a pending
            # Pay) may answer it as it was when the batch began (the answer it first gave);
            # any other retry answers the transaction as it is now.
            original = result.status is self.batch_began.get(result.id)
            assert result.status is current or original, (result.status, current)
            event("same-content retry")
            return
        if isinstance(result, PaymentsError):
            event(f"refused: {result.refusal.value}")
            if expect.refusal is None and expect.tolerated is result.refusal:
                event("tolerated: same-instant settlement")
                return
            assert result.refusal is expect.refusal, (
                f"{what}: expected {expect.refusal or expect.status}, refused with "
                f"{result.refusal} ({result.detail})"
            )
            return
        assert expect.refusal is None, f"{what}: expected {expect.refusal}, got {result}"
        if expect.existing is not None:  # a Cancel answers the cancelled transaction itself
            assert (result.id, result.status) == (expect.existing, expect.status), what
            assert result.completed_at is not None
            # Released, nothing was charged: no fee, Penny's or the caller's (#19).
            assert (result.fees, result.marketplace_fee) == (0, 0), what
            event("cancelled")
            assert expect.apply is not None
            expect.apply(result)
            return
        event(f"{expect.operation}: {expect.status}")
        assert expect.instrument is not None
        assert expect.apply is not None
        assert result.operation is expect.operation, what
        assert result.status is expect.status, (what, result.status, expect.status)
        assert (result.amount, result.currency) == (expect.amount, "USD"), what
        assert result.method is expect.method, what
        assert result.instrument_id == expect.instrument.id, what
        assert result.caller_reference == request.caller_reference
        recipient = self.seller_id if expect.seller else self.merchant_id
        assert (result.caller_id, result.recipient_id) == (self.merchant_id, recipient), what
        assert result.sender_id == self.buyers[expect.instrument.buyer].party.id
        assert result.parent_id == expect.parent, what
        assert result.received_at == now
        if result.status is not Status.failure:
            assert result.fees == expect.fee, (what, result.fees, expect.fee)
        expect.apply(result)
        self.model.remembered[request.caller_reference] = (request, result.id)

    # -- drafting requests -----------------------------------------------------------------

    def draft(self, kind: DraftKind, data: st.DataObject, batch: list[PaymentRequest]) -> None:
        drafters: dict[DraftKind, Callable[[st.DataObject], PaymentRequest]] = {
            "fund": self.draft_fund,
            "pay": self.draft_pay,
            "market": self.draft_market_pay,
            "auth_pay": self.draft_auth_pay,
            "settle": self.draft_settle,
            "write_off": self.draft_write_off,
            "refund": self.draft_refund,
            "reserve": self.draft_reserve,
            "settle_reserve": self.draft_settle_reserve,
            "cancel": self.draft_cancel,
        }
        if kind == "retry":
            if self.history or batch:
                batch.append(self.draft_retry(data, batch))
            return
        if kind == "billing_cycle":
            settle = self.draft_settle(data)
            assert isinstance(settle, SettleDebtRequest)
            self.focus = self.model.instruments.get(settle.instrument_id)
            if self.focus is not None and not self.focus.prepaid:
                batch.append(settle)
                token = self.focus.setup.sender_token.id
                amount = usd(data.draw(st.integers(1, 2_000), label="next period"))
                batch.append(PayRequest(self.merchant_id, self.ref("pay"), token, amount))
            return
        batch.append(drafters[kind](data))

    def _charge_target(self, data: st.DataObject, inst: MInstrument, label: str) -> tuple[str, str]:
        """The token and instrument a FundPrepaid or SettleDebt on ``inst`` names: its own
        funding or settlement token, else (variants 10 to 12 of 0 to 12) any token, any
        instrument or an unknown token."""
        token_id, instrument_id = inst.setup.second_token.id, inst.id
        variant = data.draw(st.integers(0, 12), label=label)
        if variant == 10:
            token_id = data.draw(st.sampled_from(list(self.model.tokens)))
        elif variant == 11:
            instrument_id = data.draw(st.sampled_from(list(self.model.instruments)))
        elif variant == 12:
            token_id = UNKNOWN_ID
        return token_id, instrument_id

    def draft_fund(self, data: st.DataObject) -> PaymentRequest:
        inst = self.pick(
            data,
            self.model.prepaids(),
            lambda i: self.valid(i) and self.model.tokens[i.setup.second_token.id].active,
        )
        token_id, instrument_id = self._charge_target(data, inst, "fund variant")
        room = [] if inst.funding_limit is None else [inst.funding_limit - inst.funded]
        fee = FEES[RAIL[inst.source]]
        anchors = [*room, *(r + 1 for r in room), inst.available, fee, fee + 1]
        amount = self.amount(data, anchors, room[0] if room else 0)
        return FundPrepaidRequest(
            self.merchant_id, self.ref("fund"), token_id, instrument_id, amount
        )

    def draft_pay(self, data: st.DataObject) -> PaymentRequest:
        prepaid = data.draw(st.booleans(), label="prepaid pay")
        inst = self.pick(
            data,
            self.model.prepaids() if prepaid else self.model.credits(),
            lambda i: (
                (i.available > 0 if i.prepaid else i.debt < i.credit_limit)
                and self.valid(i)
                and self.model.tokens[i.setup.sender_token.id].active
            ),
        )
        token_id = inst.setup.sender_token.id
        variant = data.draw(st.integers(0, 10), label="pay variant")
        if variant == 9:
            token_id = inst.setup.second_token.id  # a funding or settlement token
        elif variant == 10:
            token_id = UNKNOWN_ID
        if inst.prepaid:
            fit = inst.available
            anchors = [inst.available, inst.available + 1]
        else:
            room = inst.credit_limit - inst.debt - inst.held
            if inst.global_limit is not None:
                room = min(room, inst.global_limit - inst.charged)
            fit = min(room, inst.max_charge or room)
            anchors = [room, room + 1, room, room + 1]
            anchors += [v for v in (inst.min_charge, inst.max_charge) if v is not None]
            if inst.min_charge is not None:
                anchors.append(inst.min_charge - 1)
            if inst.max_charge is not None:
                anchors.append(inst.max_charge + 1)
            if inst.global_limit is not None:
                anchors += [inst.global_limit - inst.charged, inst.global_limit - inst.charged + 1]
        amount = self.amount(data, anchors, fit)
        return PayRequest(self.merchant_id, self.ref("pay"), token_id, amount)

    def draft_market_pay(self, data: st.DataObject) -> PaymentRequest:
        """A marketplace Pay (#19): a Pay that names the seller's recipient token, with fees
        mostly within its terms; sometimes fees without the token, or an unknown token."""
        plain = self.draft_pay(data)
        assert isinstance(plain, PayRequest)
        terms = self.model.recipient
        assert terms is not None
        fixed_cap, variable_cap = terms.max_fixed_fee, terms.max_variable_fee
        fixed = data.draw(
            st.sampled_from([0, 0, min(fixed_cap, 10), fixed_cap, fixed_cap + 1])
            | st.integers(0, fixed_cap),
            label="fixed fee",
        )
        variable = data.draw(
            st.sampled_from([0, 0, min(variable_cap, 250), variable_cap, variable_cap + 1])
            | st.integers(0, variable_cap),
            label="variable fee",
        )
        charge_fee_to = data.draw(
            st.sampled_from([None, None, FeePayer.caller, FeePayer.recipient]),
            label="ChargeFeeTo",
        )
        variant = data.draw(st.integers(0, 9), label="market variant")
        token_id: str | None = terms.id
        if variant == 8:
            token_id = None  # fees without a recipient token: NotMarketplaceApp
            fixed = max(fixed, 1)
            charge_fee_to = None
        elif variant == 9:
            token_id = UNKNOWN_ID
        return replace(
            plain,
            recipient_token_id=token_id,
            marketplace_fixed_fee=fixed,
            marketplace_variable_fee=variable,
            charge_fee_to=charge_fee_to,
        )

    def draft_reserve(self, data: st.DataObject) -> PaymentRequest:
        """A Pay's draft, reserved: held for the default 7 days, or for an hour or a few
        (so that clock advances expire some); one in three a marketplace Pay's draft (the
        seller's recipient token, random fees and ChargeFeeTo)."""
        market = data.draw(st.integers(0, 2), label="marketplace reserve") == 0
        pay = self.draft_market_pay(data) if market else self.draft_pay(data)
        assert isinstance(pay, PayRequest)
        timeout = data.draw(st.sampled_from([None, None, 60, 6 * 60, 30 * 60]), label="timeout")
        return self._reserving(pay, pay.amount, timeout)

    def _reserving(self, pay: PayRequest, amount: Money, timeout: int | None) -> ReserveRequest:
        """The Reserve of ``pay``'s request (its tokens and marketplace fees) for ``amount``."""
        return ReserveRequest(
            pay.caller_id,
            self.ref("reserve"),
            pay.sender_token_id,
            amount,
            recipient_token_id=pay.recipient_token_id,
            marketplace_fixed_fee=pay.marketplace_fixed_fee,
            marketplace_variable_fee=pay.marketplace_variable_fee,
            charge_fee_to=pay.charge_fee_to,
            timeout_minutes=timeout,
        )

    def _reserve_target(self, data: st.DataObject, label: str) -> MTxn | None:
        """Mostly an open reserve (recent ones more often), sometimes any transaction; None:
        an unknown id."""
        txns = list(self.model.txns.values())
        open_ = [t for t in txns if t.status is Status.reserved]
        variant = data.draw(st.integers(0, 9), label=f"{label} variant")
        if open_ and variant <= 6:
            return data.draw(st.sampled_from(open_[-3:] if variant <= 3 else open_), label=label)
        if txns and variant <= 8:
            return data.draw(st.sampled_from(txns), label=label)
        return None

    def draft_settle_reserve(self, data: st.DataObject) -> PaymentRequest:
        reserve = self._reserve_target(data, "reserve")
        if reserve is None:
            return settle_request(self.merchant_id, UNKNOWN_ID, None)
        how = data.draw(st.integers(0, 5), label="settle amount")
        amount: Money | None
        if how <= 1:
            amount = None  # the whole reserve
        elif how == 2:
            amount = usd(data.draw(st.integers(1, max(1, reserve.amount))))
        elif how == 3:
            amount = usd(reserve.amount)
        elif how == 4:
            amount = usd(reserve.amount + 1)
        else:
            amount = data.draw(st.sampled_from([usd(0), Money(1, "EUR"), usd(MAX_AMOUNT + 1)]))
        return settle_request(self.merchant_id, reserve.id, amount)

    def draft_cancel(self, data: st.DataObject) -> PaymentRequest:
        pending = [t for t in self.model.txns.values() if t.status is Status.pending]
        if pending and data.draw(st.integers(0, 4), label="cancel pending") == 4:
            target: MTxn | None = data.draw(st.sampled_from(pending), label="pending")
        else:
            target = self._reserve_target(data, "cancelled")
        return cancel_request(self.merchant_id, UNKNOWN_ID if target is None else target.id)

    def draft_auth_pay(self, data: st.DataObject) -> PaymentRequest:
        """A Pay with a SingleUse, MultiUse or Recurring token (a prepaid or postpaid Pay
        while there is none)."""
        auths = self.model.auths()
        if not auths:
            return self.draft_pay(data)
        inst = self.pick(
            data,
            list(auths),
            lambda i: (
                self.valid(i)
                and self.model.tokens[i.setup.sender_token.id].active
                and not (isinstance(i, MAuth) and i.kind is TokenKind.single_use and i.spent)
            ),
        )
        assert isinstance(inst, MAuth)
        token_id = inst.setup.sender_token.id
        if data.draw(st.integers(0, 12), label="auth pay variant") == 12:
            token_id = UNKNOWN_ID
        room = 5_000 if inst.global_limit is None else inst.global_limit - inst.charged
        fit = min(room, inst.max_charge or room)
        anchors = [room, room + 1, self.model.balances[inst.buyer]]
        if inst.max_charge is not None:
            anchors += [inst.max_charge, inst.max_charge + 1]
        amount = self.amount(data, anchors, fit)
        return PayRequest(self.merchant_id, self.ref("auth-pay"), token_id, amount)

    def draft_settle(self, data: st.DataObject) -> PaymentRequest:
        inst = self.pick(
            data,
            self.model.credits(),
            lambda i: i.debt > i.pending and self.model.tokens[i.setup.second_token.id].active,
        )
        token_id, instrument_id = self._charge_target(data, inst, "settle variant")
        owed = inst.debt - inst.pending
        fee = FEES[RAIL[inst.source]]
        anchors = [owed, owed + 1, 2 * owed, inst.debt, fee, fee + 1]
        amount = self.amount(data, anchors, owed)
        return SettleDebtRequest(
            self.merchant_id, self.ref("settle"), token_id, instrument_id, amount
        )

    def draft_write_off(self, data: st.DataObject) -> PaymentRequest:
        inst = self.pick(data, self.model.credits(), lambda i: i.debt > i.pending)
        instrument_id = inst.id
        variant = data.draw(st.integers(0, 10), label="write-off variant")
        if variant == 9:
            instrument_id = data.draw(st.sampled_from(list(self.model.instruments)))
        elif variant == 10:
            instrument_id = UNKNOWN_ID
        owed = inst.debt - inst.pending
        anchors = [owed, owed + 1, 1, inst.debt]
        amount = self.amount(data, anchors, owed)
        return WriteOffDebtRequest(self.merchant_id, self.ref("write-off"), instrument_id, amount)

    def draft_refund(self, data: st.DataObject) -> PaymentRequest:
        txns = list(self.model.txns.values())
        pays = [t for t in txns if t.operation is Operation.pay]
        # Marketplace Pays and Settles of marketplace reserves (their refunds alike).
        market = [t for t in txns if t.marketplace and t.operation in CHARGES]
        variant = data.draw(st.integers(0, 9), label="refund variant")
        if market and variant <= 1:
            original = data.draw(st.sampled_from(market), label="marketplace pay")
        elif pays and variant <= 3:
            original = data.draw(st.sampled_from(pays[-3:]), label="recent pay")
        elif pays and variant <= 7:
            original = data.draw(st.sampled_from(pays), label="pay")
        elif txns and variant == 8:
            original = data.draw(st.sampled_from(txns), label="txn")
        else:
            return RefundRequest(self.merchant_id, self.ref("refund"), UNKNOWN_ID)
        left = original.amount - original.refunded
        how = data.draw(st.integers(0, 5), label="refund amount")
        amount: Money | None
        if how == 0:
            amount = None  # the rest
        elif how == 1:
            amount = usd(max(1, left))
        elif how == 2:
            amount = usd(data.draw(st.integers(1, max(1, left))))
        elif how == 3:
            amount = usd(left + 1)
        elif how == 4:
            amount = usd(data.draw(st.sampled_from([0, original.amount, MAX_AMOUNT + 1])))
        else:
            amount = Money(max(1, left), "EUR")
        with_fee = data.draw(st.booleans(), label="MasterAndMarketplaceTxn")
        return RefundRequest(
            self.merchant_id,
            self.ref("refund"),
            original.id,
            amount,
            refund_marketplace_fee=with_fee,
        )

    def draft_retry(self, data: st.DataObject, batch: list[PaymentRequest]) -> PaymentRequest:
        accepted = [request for request, _txn in self.model.remembered.values()]
        if accepted and data.draw(st.integers(0, 2), label="retry accepted") < 2:
            original = data.draw(st.sampled_from(accepted), label="retried")
        else:
            original = data.draw(st.sampled_from([*self.history, *batch]), label="retried")
        how = data.draw(st.integers(0, 2), label="retry content")
        # Settle and Cancel carry no description; Cancel no amount: those retry as they were.
        if how == 0 or not hasattr(original, ("caller_description", "amount")[how - 1]):
            return original
        # Every request type has these two fields (PaymentRequest, their base, has neither).
        if how == 1:
            description = getattr(original, "caller_description", "")
            return replace(original, **{"caller_description": description + "!"})
        amount = getattr(original, "amount", None)
        changed: dict[str, Any] = {"amount": usd(1 if amount is None else amount.minor + 1)}
        return replace(original, **changed)

    # -- rules ---------------------------------------------------------------------------

    @initialize(data=st.data(), buyers=st.integers(1, 2))
    def open_accounts(self, data: st.DataObject, buyers: int) -> None:
        stack = self.stack
        merchant, _key = stack.directory.create_business("Shop", f"shop-{self.tag}@example.com")
        self.merchant_id = merchant.id
        seller, _key = stack.directory.create_business("Seller", f"seller-{self.tag}@example.com")
        self.seller_id = seller.id
        self.model.recipient = recipient_token(
            stack.services,
            merchant.id,
            seller.id,
            self.ref("recipient"),
            max_fixed=usd(data.draw(st.integers(0, 200), label="max fixed fee")).plain(),
            max_variable=data.draw(st.sampled_from([0, 250, 500, 1000, 10_000]), label="max %"),
            recipient_pays_fee=data.draw(st.booleans(), label="recipient pays fee"),
        )
        self.baseline = self.posted_system_balances()
        for index in range(buyers):
            self.buyers.append(open_buyer(stack, f"{self.tag}-{index}"))
            self.model.balances.append(0)
        for _ in range(data.draw(st.integers(2, 3), label="prepaids")):
            self.setup_instrument(data, prepaid=True)
        for _ in range(data.draw(st.integers(1, 2), label="credits")):
            self.setup_instrument(data, prepaid=False)
        self.ready = True
        for index in range(buyers):
            self.top_up(index, data.draw(st.integers(0, 20_000), label="first top-up"))
        # A first funding of every prepaid instrument, as one batch (checked like any other).
        first: list[PaymentRequest] = [
            FundPrepaidRequest(
                self.merchant_id,
                self.ref("fund"),
                inst.setup.second_token.id,
                inst.id,
                usd(data.draw(st.integers(1, inst.funding_limit or 5_000), label="first funding")),
            )
            for inst in self.model.prepaids()
        ]
        self.submit(first)

    @precondition(lambda self: len(self.model.instruments) < 6)
    @rule(data=st.data(), prepaid=st.booleans())
    def add_instrument(self, data: st.DataObject, prepaid: bool) -> None:
        self.setup_instrument(data, prepaid)

    @precondition(lambda self: len(self.model.auths()) < 4)
    @rule(data=st.data())
    def add_authorization(self, data: st.DataObject) -> None:
        """A SingleUse, MultiUse or Recurring token (issue #19) on one of a buyer's methods."""
        now = self.now
        buyer_index = data.draw(st.integers(0, len(self.buyers) - 1), label="buyer")
        buyer = self.buyers[buyer_index]
        source = data.draw(st.sampled_from(SOURCE_CHOICES), label="source")
        kind = data.draw(st.sampled_from(sorted(AUTHORIZATION_TOKEN_KINDS, key=str)))
        amount = data.draw(st.integers(100, 5_000), label="transaction amount")
        terms: dict[str, Any] = {}
        per_day: int | None = None
        global_limit: int | None = None
        max_charge: int | None = amount
        valid_until: int | None = None
        if kind is TokenKind.single_use:
            terms["transaction_amount"] = usd(amount)
            valid_until = now + SINGLE_USE_HOURS * HOUR
        elif kind is TokenKind.recurring:
            terms |= {"transaction_amount": usd(amount), "recurring_period": "1 Day"}
            per_day = 1
        else:
            global_limit = data.draw(st.integers(500, 20_000), label="global amount limit")
            per_day = data.draw(sometimes(st.integers(1, 3)), label="per day")
            terms["global_amount_limit"] = usd(global_limit)
            if per_day is not None:
                limit = UsageLimitTerm(UsageLimitType.count, per_day, "1 Day")
                terms["usage_limits"] = (limit,)
            max_charge = None
            valid_until = now + 365 * MICROS_PER_DAY
        made = self.stack.payments.setup_sender_token(
            sender_token_setup(
                self.merchant_id,
                buyer.party.id,
                buyer.methods[source].id,
                self.ref("auth"),
                kind,
                **terms,
            )
        )
        assert (made.instrument.valid_from, made.instrument.valid_until) == (now, valid_until)
        setup = InstrumentSetup(made.instrument, made.token, made.token)
        auth = MAuth(
            setup,
            False,
            buyer_index,
            source,
            now,
            valid_until,
            global_limit=global_limit,
            max_charge=max_charge,
            kind=kind,
            per_day=per_day,
        )
        self.model.add(auth)

    @rule(data=st.data())
    def marketplace_reserve_and_its_end(self, data: st.DataObject) -> None:
        """A marketplace Reserve (#19), mostly of an amount the caller's payable balance can
        hold, then what ends it: a Settle of all or part of it (often followed by a Refund of
        that Settle, with or without the caller's fee's share), a Cancel, or its timeout
        passing; or nothing (a later rule may end it). Each request is checked as any other."""
        pay = self.draft_market_pay(data)
        assert isinstance(pay, PayRequest)
        amount = pay.amount
        if data.draw(st.integers(0, 3), label="fit"):
            pay, amount = self._holdable(data, pay)
        timeout = data.draw(st.sampled_from([None, 60]), label="timeout")
        (held,) = self.submit([self._reserving(pay, amount, timeout)])
        if not isinstance(held, Transaction) or held.status is not Status.reserved:
            return
        end = data.draw(st.integers(0, 5), label="end")
        if end == 4:
            self.submit([cancel_request(self.merchant_id, held.id)])
        elif end == 5:
            self.stack.clock.advance((timeout or RESERVE_TIMEOUT) * MINUTE)
            self.complete_due()
        elif end <= 3:
            self._settle_and_refund(data, held)

    def _holdable(self, data: st.DataObject, pay: PayRequest) -> tuple[PayRequest, Money]:
        """``pay`` made a marketplace Reserve that can be held, when one can: a valid
        instrument's sender token, fees and ChargeFeeTo within the seller's terms, an amount
        within the instrument's room and the caller's available payable balance."""
        terms = self.model.recipient
        assert terms is not None
        inst = self.pick(
            data,
            [*self.model.prepaids(), *self.model.credits()],
            lambda i: self.valid(i) and self.model.tokens[i.setup.sender_token.id].active,
        )
        room = inst.available if inst.prepaid else inst.credit_limit - inst.debt - inst.held
        if not inst.prepaid and inst.global_limit is not None:
            room = min(room, inst.global_limit - inst.charged)
        room = min(room, inst.max_charge or room, self.model.payable_available)
        payer = pay.charge_fee_to
        if payer is FeePayer.recipient and not terms.recipient_pays_fee:
            payer = None
        held = replace(
            pay,
            sender_token_id=inst.setup.sender_token.id,
            recipient_token_id=terms.id,
            marketplace_fixed_fee=min(pay.marketplace_fixed_fee, terms.max_fixed_fee),
            marketplace_variable_fee=min(pay.marketplace_variable_fee, terms.max_variable_fee),
            charge_fee_to=payer,
        )
        return held, usd(data.draw(st.integers(1, max(1, room)), label="held amount"))

    def _settle_and_refund(self, data: st.DataObject, held: Transaction) -> None:
        """Settle all or part of the marketplace reserve ``held``; then, mostly, refund (part
        of) the Settle, with or without the caller's fee's share."""
        part = data.draw(
            st.none() | st.just(held.amount) | st.integers(1, held.amount), label="settle"
        )
        (settled,) = self.submit(
            [settle_request(self.merchant_id, held.id, None if part is None else usd(part))]
        )
        if not isinstance(settled, Transaction) or not data.draw(st.integers(0, 3)):
            return
        refund = data.draw(st.none() | st.integers(1, settled.amount), label="refund")
        with_fee = data.draw(st.booleans(), label="MasterAndMarketplaceTxn")
        self.submit(
            [
                RefundRequest(
                    self.merchant_id,
                    self.ref("refund"),
                    settled.id,
                    None if refund is None else usd(refund),
                    refund_marketplace_fee=with_fee,
                )
            ]
        )

    @rule(data=st.data())
    def top_up_buyer_balance(self, data: st.DataObject) -> None:
        """Money arrives in a buyer's Penny balance (no service does it yet: a ledger journal
        from external funding, as a deposit would book it)."""
        index = data.draw(st.integers(0, len(self.buyers) - 1), label="buyer")
        self.top_up(index, data.draw(st.integers(1, 20_000), label="top-up"))

    def top_up(self, index: int, amount: int) -> None:
        if amount == 0:
            return
        balance_account = self.buyers[index].party.balance_account_id
        assert balance_account is not None
        external = self.stack.payments.chart().external_funding
        legs = (Leg(external, amount, "USD"), Leg(balance_account, -amount, "USD"))
        (outcome,) = self.stack.ledger.execute(
            [NewJournal("stateful-test", uuid.uuid4().hex, legs)]
        )
        assert outcome.ok, outcome
        self.model.balances[index] += amount

    @rule(
        data=st.data(),
        kinds=st.lists(st.sampled_from(REQUEST_KINDS), min_size=1, max_size=3),
    )
    def requests(self, data: st.DataObject, kinds: list[DraftKind]) -> None:
        """A few requests of any kind, each submitted alone (one rule for all kinds, so that
        every example mixes them)."""
        for kind in kinds:
            requests: list[PaymentRequest] = []
            self.draft(kind, data, requests)
            if requests:
                self.submit(requests)

    @rule(data=st.data(), kinds=st.lists(st.sampled_from(DRAFT_KINDS), min_size=2, max_size=4))
    def batch(self, data: st.DataObject, kinds: list[DraftKind]) -> None:
        requests: list[PaymentRequest] = []
        self.batching, self.focus = True, None
        try:
            for kind in kinds:
                self.draft(kind, data, requests)
        finally:
            self.batching, self.focus = False, None
        if requests:
            event(f"batch of {len(requests)}")
            self.submit(requests)

    @precondition(lambda self: sum(not t.active for t in self.model.tokens.values()) < 2)
    @rule(data=st.data())
    def cancel_token_then_use_it(self, data: st.DataObject) -> None:
        payments = self.stack.payments
        token_id = data.draw(st.sampled_from(list(self.model.tokens)), label="token")
        token = self.model.tokens[token_id]
        if data.draw(st.integers(0, 5), label="cancel caller") == 5:
            # Only the caller who installed a token may cancel it; others see no such token.
            with pytest.raises(PaymentsError) as refused:
                payments.cancel_token(self.buyers[0].party.id, token_id)
            assert refused.value.refusal is Refusal.unknown_token
            return
        cancelled = payments.cancel_token(self.merchant_id, token_id)
        assert (cancelled.id, cancelled.status) == (token_id, TokenStatus.inactive)
        token.active = False
        inst = token.instrument
        amount = usd(1)
        use: PaymentRequest
        if token.kind in (
            TokenKind.prepaid_sender,
            TokenKind.credit_sender,
            *AUTHORIZATION_TOKEN_KINDS,
        ):
            use = PayRequest(self.merchant_id, self.ref("pay"), token_id, amount)
        elif token.kind is TokenKind.funding:
            use = FundPrepaidRequest(self.merchant_id, self.ref("fund"), token_id, inst.id, amount)
        else:
            use = SettleDebtRequest(self.merchant_id, self.ref("settle"), token_id, inst.id, amount)
        (result,) = self.submit([use])
        assert isinstance(result, PaymentsError)
        assert result.refusal is Refusal.token_not_active

    @precondition(lambda self: any(a.kind is TokenKind.recurring for a in self.model.auths()))
    @rule(data=st.data())
    def cancel_subscription_and_refund(self, data: st.DataObject) -> None:
        """CancelSubscriptionAndRefund (#19) of a Recurring token: its most recent Pay is
        refunded as the model decides a Refund (RefundAmount, or what is left of it) and the
        token is cancelled — or the refund is refused and the token stays as it was."""
        auth = self._subscription(data)
        token_id = auth.setup.sender_token.id
        token = self.model.tokens[token_id]
        last = self._last_pay(auth)
        if token.active and (last is None or data.draw(st.integers(0, 3), label="pay") == 0):
            charge = usd(data.draw(st.integers(1, auth.max_charge or 1), label="period"))
            self.submit([PayRequest(self.merchant_id, self.ref("sub-pay"), token_id, charge)])
            last = self._last_pay(auth)  # checked like any Pay: it may have been refused
        if last is not None and last.status is Status.pending and data.draw(st.integers(0, 3)):
            self.stack.clock.advance(HOUR)  # the card answers first, mostly
            self.complete_due()
        amount = data.draw(sometimes(st.integers(1, 6_000)), label="refund amount")
        ref = self.ref("sub-refund") if amount is not None else None
        refund = self._subscription_refund(token_id, last, amount, ref)
        self.stack.clock.advance(1)
        now = self.now
        call = CancelSubscription(
            self.merchant_id, token_id, None if amount is None else usd(amount), ref
        )
        self.batch_began = {}
        try:
            result: Transaction | PaymentsError | None = subs.cancel_and_refund(
                self.stack.payments, call
            )
        except PaymentsError as refused:
            result = refused
        if refund is None:
            if amount is not None:  # an amount to refund, and no payment at all
                assert isinstance(result, PaymentsError)
                assert result.refusal is Refusal.invalid_params
                return
            assert result is None
            event("subscription cancelled without a refund")
        else:
            assert result is not None, "the refund the model expects was not made"
            self.check(refund, result, now)
            self.history.append(refund)
            if isinstance(result, PaymentsError):
                status = self.stack.payments.token_by_caller(self.merchant_id, token_id=token_id)
                assert status.active is token.active  # nothing changed
                return
            event("subscription cancelled with a refund")
        token.active = False

    def _subscription(self, data: st.DataObject) -> MAuth:
        """A Recurring token: an active one mostly."""
        recurring = [a for a in self.model.auths() if a.kind is TokenKind.recurring]
        active = [a for a in recurring if self.model.tokens[a.setup.sender_token.id].active]
        if active and data.draw(st.integers(0, 4), label="an active subscription") > 0:
            recurring = active
        return data.draw(st.sampled_from(recurring), label="subscription")

    def _last_pay(self, auth: MAuth) -> MTxn | None:
        pays = [t for t in self.model.txns.values() if t.instrument is auth]
        return next((t for t in reversed(pays) if t.operation is Operation.pay), None)

    def _subscription_refund(
        self, token_id: str, last: MTxn | None, amount: int | None, ref: str | None
    ) -> RefundRequest | None:
        """The refund CancelSubscriptionAndRefund makes, as docs/decisions.md says."""
        if last is None:
            return None
        if amount is not None:
            assert ref is not None
            return RefundRequest(self.merchant_id, ref, last.id, usd(amount))
        key = DEFAULT_REFUND_REFERENCE.format(token_id)
        refundable = last.status is Status.success and last.amount > last.refunded
        if (
            key not in self.model.remembered
            and not refundable
            and last.status is not Status.pending
        ):
            return None
        return RefundRequest(self.merchant_id, key, last.id, None)

    @rule(hours=st.sampled_from([24, 96, 25, 97, 48]) | st.integers(1, 120), data=st.data())
    def advance_time(self, hours: int, data: st.DataObject) -> None:
        self.stack.clock.advance(hours * HOUR)
        finished = self.complete_due()
        if not finished or not data.draw(st.booleans(), label="follow up"):
            return
        # The merchant reacts to what finished: funds again after a returned transfer, spends
        # what arrived, settles again, ...
        txn = data.draw(st.sampled_from(finished), label="finished")
        prepaid_kinds: tuple[DraftKind, ...] = ("fund", "pay")
        credit_kinds: tuple[DraftKind, ...] = ("settle", "pay", "write_off")
        kind = data.draw(
            st.sampled_from(prepaid_kinds if txn.instrument.prepaid else credit_kinds),
            label="follow-up kind",
        )
        requests: list[PaymentRequest] = []
        self.focus = txn.instrument
        try:
            self.draft(kind, data, requests)
        finally:
            self.focus = None
        self.submit(requests)

    def complete_due(self) -> list[MTxn]:
        finished = self.stack.payments.complete_due()
        mine = {t.id: t.status for t in finished if t.id in self.model.txns}
        expected = self.model.complete(self.now)
        assert mine == expected
        for txn in finished:
            if txn.id in mine and txn.operation is Operation.reserve:
                # An expired reserve charged nothing: no fee, Penny's or the caller's (#19).
                assert (txn.fees, txn.marketplace_fee) == (0, 0), txn.id
        for status in expected.values():
            event(f"completed: {status}")
        return [self.model.txns[txn_id] for txn_id in expected]

    def posted_system_balances(self) -> tuple[int, int]:
        """The external funding account's posted net debit (money that came in) and the fee
        account's posted net credit (Penny's fees)."""
        chart = self.stack.payments.chart()
        external = self.stack.ledger.balance(chart.external_funding)
        fees = self.stack.ledger.balance(chart.fees)
        assert external is not None
        assert fees is not None
        return -external.net_credit_posted, fees.net_credit_posted

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def money_is_conserved(self) -> None:
        """What came in from outside is in the two merchants' payable balances, Penny's fees
        and the buyers' balances; Penny's fees and the seller's balance (and what it has
        pending in) are the model's."""
        if not self.ready:
            return
        payments = self.stack.payments
        external, fees = self.posted_system_balances()
        came_in, earned = external - self.baseline[0], fees - self.baseline[1]
        books = payments.account_balance(self.seller_id)
        seller = books.total.minor
        assert (seller, earned) == (self.model.seller_payable, self.model.penny_fees)
        # Marketplace reserves' holds: pending in to the seller, never out of it.
        assert (books.pending_in.minor, books.pending_out.minor) == (self.model.seller_pending, 0)
        merchant = payments.account_balance(self.merchant_id).total.minor
        buyers = sum(payments.account_balance(b.party.id).total.minor for b in self.buyers)
        assert came_in == merchant + seller + earned + buyers

    @invariant()
    def books_agree_with_the_model(self) -> None:
        if not self.ready:
            return
        payments, merchant = self.stack.payments, self.merchant_id
        model = self.model
        for inst in model.instruments.values():
            if isinstance(inst, MAuth):
                continue  # no balance of its own: its Pays show in the payable and the buyers'
            if inst.prepaid:
                balance = payments.prepaid_balance(merchant, inst.id)
                assert balance.main.minor >= 0
                assert (balance.main.minor, balance.pending.minor) == (
                    inst.available,
                    inst.pending,
                ), inst.id
            else:
                debt = payments.debt_balance(merchant, inst.id)
                assert (debt.main.minor, debt.pending.minor) == (inst.debt, inst.pending), inst.id
                assert 0 <= debt.main.minor <= inst.credit_limit
        # GetTotalPrepaidLiability: main is the sum of the posted (available) prepaid balances;
        # pending fundings are not part of it, they are its `pending` part.
        for inst in model.credits():  # what reserves hold stays within the credit line
            assert inst.debt + inst.held <= inst.credit_limit, inst.id
            assert inst.global_limit is None or inst.charged <= inst.global_limit, inst.id
        # GetTotalPrepaidLiability is posted value: what reserves hold on it is still owed.
        liability = payments.total_prepaid_liability(merchant)
        prepaids = model.prepaids()
        assert (liability.main.minor, liability.pending.minor) == (
            sum(i.available + i.held for i in prepaids),
            sum(i.pending for i in prepaids),
        )
        owed = payments.outstanding_debt(merchant)
        credits = model.credits()
        assert (owed.main.minor, owed.pending.minor) == (
            sum(i.debt for i in credits),
            sum(i.pending for i in credits),
        )
        account = payments.account_balance(merchant)
        assert account.total.minor == model.payable
        assert account.pending_in.minor == model.payable_pending
        assert account.pending_out.minor == model.payable_held  # marketplace reserves' holds
        assert account.disburse.minor == model.payable_available
        for buyer, expected in zip(self.buyers, model.balances, strict=True):
            assert payments.account_balance(buyer.party.id).total.minor == expected

    @invariant()
    def transactions_agree_with_the_model(self) -> None:
        if not self.ready:
            return
        listed: dict[str, Transaction] = {}
        start: int | None = 0
        while start is not None:
            page, start = self.stack.payments.activity(
                self.merchant_id, start=start, ascending=True, max_batch=200
            )
            listed.update((t.id, t) for t in page)
        assert set(listed) == set(self.model.txns)
        for txn_id, txn in listed.items():
            expected = self.model.txns[txn_id]
            assert (txn.operation, txn.status, txn.amount, txn.refunded) == (
                expected.operation,
                expected.status,
                expected.amount,
                expected.refunded,
            ), txn_id

    @invariant()
    def audit_is_clean(self) -> None:
        report = self.stack.ledger.audit()
        assert report.ok, report

    def teardown(self) -> None:
        # Let every pending transaction of this example finish, so no later example finds it.
        if self.ready:
            self.stack.clock.advance(5 * MICROS_PER_DAY)
            self.complete_due()


def test_payments_against_the_model(database_url: str) -> None:
    with open_stack(database_url) as stack:
        postgresql = stack.db.is_postgresql

        class OnThisStore(PaymentsMachine):
            pass

        OnThisStore.stack = stack
        run_state_machine_as_test(
            OnThisStore,
            settings=machine_settings(12 if postgresql else 25),
        )
        assert stack.ledger.audit().ok


# -- bugs found by the machine, pinned ----------------------------------------------------


def _world(stack: Stack) -> tuple[str, Buyer]:
    merchant, _key = stack.directory.create_business("Shop", "shop@example.com")
    return merchant.id, open_buyer(stack, "pinned")


@pytest.mark.parametrize("operation", ["fund", "settle"])
def test_charge_no_larger_than_its_fee_is_answered_not_crashed(
    database_url: str, operation: str
) -> None:
    """A FundPrepaid or SettleDebt of exactly the fee (a $0.50 card charge with a $0.50 fee)
    must be answered — refused, or accepted with the whole amount as fee — and must not take
    the rest of its batch down with it."""
    with open_stack(database_url) as stack:
        merchant, buyer = _world(stack)
        payments = stack.payments
        card = buyer.methods["card"].id
        requests: list[PaymentRequest]
        if operation == "fund":
            setup = payments.setup_prepaid(
                prepaid_setup(merchant, buyer.party.id, card, ("s", "f"))
            )
            token, inst = setup.second_token.id, setup.instrument.id
            requests = [
                FundPrepaidRequest(merchant, "ok", token, inst, usd(1000)),
                FundPrepaidRequest(merchant, "fee-only", token, inst, usd(50)),
            ]
        else:
            setup = payments.setup_postpaid(
                postpaid_setup(merchant, buyer.party.id, card, ("s", "t"), credit_limit=usd(10_000))
            )
            payments.execute(PayRequest(merchant, "pay", setup.sender_token.id, usd(2000)))
            token, inst = setup.second_token.id, setup.instrument.id
            requests = [
                SettleDebtRequest(merchant, "ok", token, inst, usd(1000)),
                SettleDebtRequest(merchant, "fee-only", token, inst, usd(50)),
            ]
        first, second = payments.submit(requests)  # today: AssertionError from _book
        assert isinstance(first, Transaction)
        assert first.status is Status.success
        payable = payments.account_balance(merchant).total.minor
        if isinstance(second, PaymentsError):
            assert payable == 950
        else:
            assert (second.status, second.fees) == (Status.success, 50)
            assert payable == 950  # the merchant gets nothing of a fee-only charge
        assert stack.ledger.audit().ok


def test_refund_of_a_pay_accepted_after_a_settlement_in_the_same_batch(database_url: str) -> None:
    """docs/decisions.md: a postpaid Pay is refundable while no SettleDebt has been accepted
    on its instrument *since the Pay*. A Pay accepted after a settlement in the same batch (so
    at the same instant) was made after it and is refundable."""
    with open_stack(database_url) as stack:
        merchant, buyer = _world(stack)
        payments = stack.payments
        card = buyer.methods["card"].id
        setup = payments.setup_postpaid(
            postpaid_setup(merchant, buyer.party.id, card, ("s", "t"), credit_limit=usd(10_000))
        )
        token, settle_token, inst = (
            setup.sender_token.id,
            setup.second_token.id,
            setup.instrument.id,
        )
        payments.execute(PayRequest(merchant, "pay-1", token, usd(1000)))
        stack.clock.advance(1)
        settle, later_pay = payments.submit(
            [
                SettleDebtRequest(merchant, "settle", settle_token, inst, usd(1000)),
                PayRequest(merchant, "pay-2", token, usd(500)),
            ]
        )
        assert isinstance(settle, Transaction)
        assert settle.status is Status.success
        assert isinstance(later_pay, Transaction)
        assert later_pay.status is Status.success
        stack.clock.advance(1)
        (refund,) = payments.submit([RefundRequest(merchant, "refund", later_pay.id)])
        assert isinstance(refund, Transaction), refund  # today: debt_already_settled
        assert payments.debt_balance(merchant, inst).main.minor == 0


@pytest.mark.parametrize("release", ["cancel", "expire"])
def test_a_released_marketplace_reserve_reports_no_fee_when_read_back(
    database_url: str, release: str
) -> None:
    """docs/decisions.md (#19): a cancelled or expired marketplace reserve charged nothing and
    reports no fee, Penny's or the caller's — also when read back (GetTransaction, a second
    Cancel). The release answered a marketplace fee of 0 but did not store it."""
    with open_stack(database_url) as stack:
        merchant, buyer = _world(stack)
        seller, _key = stack.directory.create_business("Seller", "seller@example.com")
        payments = stack.payments
        card = buyer.methods["card"].id
        setup = payments.setup_prepaid(prepaid_setup(merchant, buyer.party.id, card, ("s", "f")))
        token, inst = setup.second_token.id, setup.instrument.id
        payments.execute(FundPrepaidRequest(merchant, "fund", token, inst, usd(2000)))
        terms = recipient_token(stack.services, merchant, seller.id, max_fixed="0.25")
        held = payments.execute(
            ReserveRequest(
                merchant,
                "reserve",
                setup.sender_token.id,
                usd(1000),
                recipient_token_id=terms.id,
                marketplace_fixed_fee=25,
                timeout_minutes=60,
            )
        )
        assert (held.status, held.fees, held.marketplace_fee) == (Status.reserved, 5, 25)
        if release == "cancel":
            released = payments.execute(cancel_request(merchant, held.id))
        else:
            stack.clock.advance(2 * HOUR)
            (released,) = [t for t in payments.complete_due() if t.id == held.id]
        answer = released
        assert (answer.status, answer.fees, answer.marketplace_fee) == (Status.cancelled, 0, 0)
        again = payments.execute(cancel_request(merchant, held.id))
        stored = payments.transaction(merchant, held.id)
        for answer in (again, stored):  # before the fix: marketplace_fee 25
            assert (answer.status, answer.fees, answer.marketplace_fee) == (Status.cancelled, 0, 0)
