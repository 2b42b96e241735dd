"""The Co-Branded UI pages: start, sign in or register, payment method, review, confirm/cancel.

:class:`CobrandedUi` serves ``/cobranded-ui/…`` (routes from :func:`cobranded_routes`). Each
request is read on the event loop (query and a size-limited form body) and served in the thread
pool, because every step touches the database. State lives on the server
(:mod:`penny.storage.cobranded_sql`): a browser carries one random cookie, stored hashed; a
pipeline belongs to the session that started it; every form carries the session's CSRF token;
signing in gives the browser a new session id. A finished pipeline ends in a redirect to the
merchant's ``returnURL`` signed by :class:`~penny.signing.Signer` (spec §3).

Configuration (environment, read when the application is built):

* ``PENNY_CBUI_ALLOW_UNSIGNED=1`` accepts start requests without a ``signature`` (default:
  refused). An unsigned request's ``returnURL`` is never trusted for an error redirect.
* ``PENNY_PUBLIC_URL`` is Penny's public base URL, used in ``certificateUrl``; by default the
  URL the request came to.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from penny.clock import Clock, SystemClock
from penny.domain.errors import PaymentsError
from penny.domain.parties import (
    MIN_PASSWORD_LENGTH,
    CardBehaviour,
    DirectoryError,
    DuplicateEmailError,
    InvalidDetailsError,
    Party,
    PartyKind,
    PaymentMethod,
    PaymentMethodKind,
    card_expired,
    check_password,
    normalise_email,
    normalise_name,
    parse_expiry,
)
from penny.fps.signature import candidate_hosts, is_signature_method, matching_host
from penny.money import Money
from penny.parties import Directory
from penny.services.payments import InstrumentSetup, Payments, SetupPostpaid, SetupPrepaid
from penny.signing import Signer
from penny.storage import cobranded_sql as sql
from penny.web.cobranded import security
from penny.web.cobranded.http import (
    BadRequestError,
    Incoming,
    Page,
    decode_query,
    read_incoming,
)
from penny.web.cobranded.params import (
    METHOD_CODES,
    Pipeline,
    PipelineRequest,
    StartError,
    Status,
    parse_start,
    return_url_problem,
)
from penny.web.cobranded.returns import REFUSAL_STATUS, error_params, success_params

logger = logging.getLogger(__name__)

PREFIX: Final = "/cobranded-ui"
START_PATH: Final = f"{PREFIX}/actions/start"
ALLOW_UNSIGNED_ENV: Final = "PENNY_CBUI_ALLOW_UNSIGNED"
PUBLIC_URL_ENV: Final = "PENNY_PUBLIC_URL"
#: Seconds before an error page sends the buyer back to the merchant on its own.
ERROR_REFRESH_S: Final = 10
_METHOD_LABELS: Final = {
    PaymentMethodKind.card: "credit card",
    PaymentMethodKind.bank: "bank account",
    PaymentMethodKind.balance: "Penny balance",
}


@dataclass(frozen=True, slots=True)
class Settings:
    allow_unsigned: bool = False
    public_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        allow = env.get(ALLOW_UNSIGNED_ENV, "").strip().lower() in {"1", "true", "yes"}
        return cls(allow, env.get(PUBLIC_URL_ENV) or None)


@dataclass(frozen=True, slots=True)
class _Context:
    """A pipeline request after its session and pipeline were checked."""

    incoming: Incoming
    session: sql.SessionRow
    row: sql.PipelineRow
    request: PipelineRequest
    merchant: Party


class CobrandedUi:
    """The pages, over the directory (buyers, methods), payments (instruments) and signer."""

    def __init__(
        self,
        directory: Directory,
        payments: Payments,
        signer: Signer,
        *,
        settings: Settings | None = None,
        web_clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.payments = payments
        self.signer = signer
        self.database = directory.database
        self.settings = settings or Settings.from_env()
        #: Sessions and sign-in attempts run on real time; validity on the payments clock.
        self.web_clock = web_clock or SystemClock()
        self.templates = Environment(
            loader=PackageLoader("penny.web.cobranded", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.css = resources.files("penny.web.cobranded").joinpath("static/penny.css").read_bytes()

    # -- plumbing --------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        pipeline = f"{PREFIX}/pipelines/{{pid}}"
        return [
            Route(START_PATH, self._endpoint(self.start), methods=["GET"]),
            Route(f"{PREFIX}/static/penny.css", self.stylesheet, methods=["GET"]),
            Route(pipeline, self._endpoint(self.resume), methods=["GET"]),
            Route(f"{pipeline}/signin", self._endpoint(self.signin), methods=["GET", "POST"]),
            Route(f"{pipeline}/register", self._endpoint(self.register), methods=["GET", "POST"]),
            Route(f"{pipeline}/method", self._endpoint(self.method), methods=["GET", "POST"]),
            Route(f"{pipeline}/card", self._endpoint(self.add_card), methods=["POST"]),
            Route(f"{pipeline}/bank", self._endpoint(self.add_bank), methods=["POST"]),
            Route(f"{pipeline}/review", self._endpoint(self.review), methods=["GET"]),
            Route(f"{pipeline}/confirm", self._endpoint(self.confirm), methods=["POST"]),
            Route(f"{pipeline}/cancel", self._endpoint(self.cancel), methods=["POST"]),
            Route(f"{pipeline}/none", self._endpoint(self.no_method), methods=["POST"]),
            Route(f"{pipeline}/signout", self._endpoint(self.signout), methods=["POST"]),
        ]

    async def stylesheet(self, _request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(self.css, media_type="text/css", headers=headers)

    def _endpoint(
        self, handler: Callable[[Incoming], Page]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                incoming = await read_incoming(request)
                page = await run_in_threadpool(handler, incoming)
            except BadRequestError as error:
                page = self._problem(error.status, error.title, error.message)
            except Exception:
                logger.exception("Co-Branded UI request failed")
                page = self._problem(
                    503,
                    "Penny could not finish this step",
                    "Nothing was changed. Go back to the merchant's site and try again.",
                )
            return self._render(page)

        return endpoint

    def _render(self, page: Page) -> Response:
        headers = security.security_headers(page.form_targets)
        if page.location is not None:
            response: Response = RedirectResponse(page.location, 303, headers=headers)
        else:
            assert page.template is not None
            body = self.templates.get_template(page.template).render(page.context)
            response = HTMLResponse(body, page.status, headers=headers)
        if page.set_cookie is not None:
            response.set_cookie(
                security.COOKIE_NAME,
                page.set_cookie,
                max_age=security.SESSION_TTL_US // 1_000_000,
                path=security.COOKIE_PATH,
                secure=page.secure,
                httponly=True,
                samesite="lax",
            )
        return response

    def _problem(
        self, status: int, title: str, message: str, *, back: str | None = None, **more: Any
    ) -> Page:
        return Page(
            status,
            "problem.html",
            {"title": title, "message": message, "back": back, "refresh": ERROR_REFRESH_S, **more},
            form_targets=(),
        )

    def _base_url(self, incoming: Incoming) -> str:
        return self.settings.public_url or incoming.base_url

    def _secure(self, incoming: Incoming) -> bool:
        """TLS as seen by Penny, or a public URL that says https (a TLS-terminating proxy)."""
        public = self.settings.public_url or ""
        return incoming.secure or public.startswith("https://")

    def _now(self) -> int:
        return self.web_clock.now_us()

    # -- start -------------------------------------------------------------------------------

    def start(self, incoming: Incoming) -> Page:
        params = decode_query(incoming.query)
        merchant, secret = self._start_merchant(params)
        trusted = self._start_trusted(incoming, params, secret)
        return_url = params.get("returnURL", "")
        can_return = trusted and return_url_problem(return_url) is None
        parsed = parse_start(params, self.payments.clock.now_us())
        if isinstance(parsed, PipelineRequest):
            used = self._references_used(merchant.id, parsed)
            if used:
                parsed = StartError(
                    Status.not_permitted,
                    f"The caller reference {used} was already used for a token.",
                    (used,),
                )
        if isinstance(parsed, StartError):
            back = None
            if can_return:
                back = self._signed_return(incoming, return_url, error_params(parsed, params))
            return self._problem(
                400,
                "This payment request cannot be completed",
                parsed.message,
                back=back,
                merchant=merchant.name,
                fields=parsed.fields,
            )
        pid, cookie, session = self._open_pipeline(incoming, merchant, parsed)
        step = "method" if session.party_id else "signin"
        return Page(
            location=f"{PREFIX}/pipelines/{pid}/{step}",
            set_cookie=cookie,
            secure=self._secure(incoming),
        )

    def _start_merchant(self, params: Mapping[str, str]) -> tuple[Party, str]:
        """The merchant a start request's ``callerKey`` names, and that key's secret."""
        caller_key = params.get("callerKey", "")
        key = self.directory.api_key(caller_key) if 0 < len(caller_key) <= 64 else None
        secret = self.directory.secret_for(caller_key) if key is not None else None
        if key is None or secret is None:
            raise BadRequestError(
                400,
                "This payment request cannot be used",
                "The merchant's request does not name a valid Penny merchant key (callerKey). "
                "Go back to the merchant's site and try again.",
            )
        merchant = self.directory.party(key.party_id)
        assert merchant is not None
        return merchant, secret

    def _start_trusted(self, incoming: Incoming, params: Mapping[str, str], secret: str) -> bool:
        """Whether the start request is signed (a bad signature, or none when unsigned requests
        are not allowed, is refused)."""
        trusted = False
        if "signature" in params:
            trusted = self._signature_ok(incoming, params, secret)
            if not trusted:
                raise BadRequestError(
                    403,
                    "This payment request was altered",
                    "The request's signature does not match its contents, so Penny cannot "
                    "tell whether the merchant sent it. Nothing was changed. Go back to the "
                    "merchant's site and start again.",
                )
        elif not self.settings.allow_unsigned:
            raise BadRequestError(
                403,
                "This payment request is not signed",
                "Penny accepts only payment requests signed by the merchant. Go back to the "
                "merchant's site and start again.",
            )
        return trusted

    def _open_pipeline(
        self, incoming: Incoming, merchant: Party, parsed: PipelineRequest
    ) -> tuple[str, str | None, sql.SessionRow]:
        """Store a new pipeline for ``parsed`` in the browser's session (a new session when it
        has none): the pipeline id, the new session's cookie (``None`` if it had one), the
        session."""
        now = self._now()
        with self.database.write() as conn:
            sql.delete_expired(conn, now)
            session = self._session(conn, incoming, now)
            cookie = None
            if session is None:
                cookie = security.new_secret()
                session = sql.SessionRow(
                    security.hash_id(cookie),
                    None,
                    security.new_secret(),
                    now + security.SESSION_TTL_US,
                )
                sql.insert_session(conn, session, now)
            pid = security.new_secret()
            sql.insert_pipeline(
                conn,
                sql.PipelineRow(
                    pid,
                    session.id_hash,
                    merchant.id,
                    parsed.pipeline.value,
                    parsed.to_json(),
                    None,
                    sql.OPEN,
                    None,
                    now + security.PIPELINE_TTL_US,
                ),
                now,
            )
        return pid, cookie, session

    def _signature_ok(self, incoming: Incoming, params: Mapping[str, str], secret: str) -> bool:
        method = params.get("signatureMethod", "")
        if params.get("signatureVersion") != "2" or not is_signature_method(method):
            return False
        hosts = candidate_hosts(incoming.host, incoming.server_port)
        host = matching_host(
            secret, "GET", hosts, START_PATH, params, method, signature_name="signature"
        )
        return host is not None

    def _references_used(self, caller_id: str, request: PipelineRequest) -> str | None:
        for name, reference in request.references().items():
            try:
                self.payments.token_by_caller(caller_id, caller_reference=reference)
            except PaymentsError:
                continue
            return name
        return None

    def _signed_return(self, incoming: Incoming, url: str, params: Mapping[str, str]) -> str:
        return self.signer.signed_redirect(self._base_url(incoming), url, params)

    # -- sessions and pipelines --------------------------------------------------------------

    def _session(self, conn: Any, incoming: Incoming, now: int) -> sql.SessionRow | None:
        if not incoming.cookie or len(incoming.cookie) > 128:
            return None
        return sql.load_session(conn, security.hash_id(incoming.cookie), now)

    def _context(self, incoming: Incoming, *, check_csrf: bool) -> _Context:
        pid = incoming.path_params.get("pid", "")
        now = self._now()
        with self.database.read() as conn:
            session = self._session(conn, incoming, now)
            row = sql.load_pipeline(conn, pid, now) if len(pid) <= 64 else None
        if session is None or row is None or row.session_hash != session.id_hash:
            raise BadRequestError(
                403,
                "This page has expired",
                "This payment page is not open in this browser any more (it expired, or it was "
                "started in another browser). Go back to the merchant's site and start again.",
            )
        if check_csrf:
            form = incoming.form or {}
            if not security.same_token(session.csrf_token, form.get("csrf")):
                raise BadRequestError(
                    403,
                    "This form has expired",
                    "The form was not sent from this page (or the page is too old). "
                    "Nothing was changed. Reload the page and try again.",
                )
        merchant = self.directory.party(row.caller_id)
        assert merchant is not None
        return _Context(incoming, session, row, PipelineRequest.from_json(row.params), merchant)

    def _view(self, ctx: _Context, template: str, status: int = 200, **more: Any) -> Page:
        request = ctx.request
        context: dict[str, Any] = {
            "pid": ctx.row.id,
            "csrf": ctx.session.csrf_token,
            "merchant": ctx.merchant.name,
            "site": request.website_description,
            "pipeline": request.pipeline.value,
            "prepaid": request.pipeline is Pipeline.prepaid,
            "limit": _money(request.limit),
            "global_limit": _money(request.global_amount_limit),
            "min_charge": _money(request.min_charge),
            "max_charge": _money(request.max_charge),
            "valid_from": _date(request.valid_from),
            "valid_until": _date(request.valid_until),
            "reason": request.payment_reason,
            "signed_in": ctx.session.party_id is not None,
            "errors": {},
            "values": {},
            **more,
        }
        origin = security.origin_of(request.return_url)
        return Page(status, template, context, form_targets=(origin,) if origin else ())

    def _finished(self, ctx: _Context) -> Page | None:
        if ctx.row.state != sql.FINISHED:
            return None
        assert ctx.row.result_url is not None
        return self._view(ctx, "finished.html", back=ctx.row.result_url)

    def resume(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=False)
        step = "method" if ctx.session.party_id else "signin"
        return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/{step}")

    # -- signing in --------------------------------------------------------------------------

    def signin(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=incoming.method == "POST")
        finished = self._finished(ctx)
        if finished is not None:
            return finished
        if incoming.method == "GET":
            return self._view(ctx, "signin.html")
        form = incoming.form or {}
        email, password = form.get("email", "").strip(), form.get("password", "")
        now = self._now()
        subjects = [f"email:{email.lower()[:254]}", f"client:{incoming.client[:64]}"]
        limits = (security.SIGNIN_MAX_PER_EMAIL, security.SIGNIN_MAX_PER_CLIENT)
        if self._rate_limited(subjects, limits, now):
            return self._view(
                ctx,
                "signin.html",
                429,
                errors={"form": "Too many failed sign-in attempts. Wait 15 minutes and try again."},
                values={"email": email},
            )
        party = self.directory.authenticate_buyer(email, password) if email and password else None
        if party is None:
            with self.database.write() as conn:
                sql.record_failure(conn, subjects, now)
            return self._view(
                ctx,
                "signin.html",
                400,
                errors={"form": "The email address or the password is wrong."},
                values={"email": email},
            )
        return self._signed_in(ctx, party.id)

    def _rate_limited(self, subjects: list[str], limits: tuple[int, ...], now: int) -> bool:
        since = now - security.SIGNIN_WINDOW_US
        with self.database.read() as conn:
            return any(
                sql.failures_since(conn, subject, since) >= limit
                for subject, limit in zip(subjects, limits, strict=True)
            )

    def _signed_in(self, ctx: _Context, party_id: str | None) -> Page:
        """Give the browser a new session id (and CSRF token) for ``party_id``."""
        now = self._now()
        cookie = security.new_secret()
        new = sql.SessionRow(
            security.hash_id(cookie), party_id, security.new_secret(), now + security.SESSION_TTL_US
        )
        with self.database.write() as conn:
            sql.sign_in_session(conn, ctx.session.id_hash, new, now, party_id)
            sql.prune_failures(conn, now - security.SIGNIN_WINDOW_US)
        step = "method" if party_id else "signin"
        return Page(
            location=f"{PREFIX}/pipelines/{ctx.row.id}/{step}",
            set_cookie=cookie,
            secure=self._secure(ctx.incoming),
        )

    def register(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=incoming.method == "POST")
        finished = self._finished(ctx)
        if finished is not None:
            return finished
        if incoming.method == "GET":
            return self._view(ctx, "register.html")
        form = incoming.form or {}
        name, email = form.get("name", "").strip(), form.get("email", "").strip()
        password = form.get("password", "")
        errors = _registration_errors(name, email, password, form.get("password2", ""))
        party: Party | None = None
        now = self._now()
        attempts = [f"register:{incoming.client[:64]}"]
        if not errors and self._rate_limited(attempts, (security.REGISTER_MAX_PER_CLIENT,), now):
            errors["form"] = "Too many accounts were created from here. Wait 15 minutes."
        elif not errors:
            # Every well-formed attempt counts (each costs a hash), a taken email too: that is
            # what limits probing which emails have accounts (docs/security.md).
            with self.database.write() as conn:
                sql.record_failure(conn, attempts, now)
            try:
                party = self.directory.create_personal(name, email, password)
            except DuplicateEmailError:
                errors["email"] = _TAKEN_EMAIL
            except DirectoryError as error:
                errors["form"] = _sentence(str(error))
        if party is None:
            return self._view(
                ctx, "register.html", 400, errors=errors, values={"name": name, "email": email}
            )
        return self._signed_in(ctx, party.id)

    def signout(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        return self._signed_in(ctx, None)

    # -- payment method ----------------------------------------------------------------------

    def _buyer(self, ctx: _Context) -> Party | None:
        """The signed-in buyer, or None (nobody, or not a personal account)."""
        party_id = ctx.session.party_id
        party = self.directory.party(party_id) if party_id else None
        if party is None or party.kind is not PartyKind.personal:
            return None
        return party

    def _open_with_buyer(
        self, incoming: Incoming, *, check_csrf: bool
    ) -> tuple[_Context, Party] | Page:
        """The pipeline and its signed-in buyer; or the page to show instead (the pipeline's
        end, when it is finished; sign-in, when nobody is signed in)."""
        ctx = self._context(incoming, check_csrf=check_csrf)
        finished = self._finished(ctx)
        if finished is not None:
            return finished
        buyer = self._buyer(ctx)
        return _sign_in_first(ctx) if buyer is None else (ctx, buyer)

    def _methods(self, ctx: _Context, buyer: Party) -> list[PaymentMethod]:
        allowed = set(ctx.request.methods)
        return [m for m in self.directory.payment_methods(buyer.id) if m.kind in allowed]

    def _method_page(self, ctx: _Context, buyer: Party, status: int = 200, **more: Any) -> Page:
        allowed = ctx.request.methods
        methods = self._methods(ctx, buyer)
        return self._view(
            ctx,
            "method.html",
            status,
            buyer=buyer.name,
            methods=[(m.id, _describe(m)) for m in methods],
            chosen=ctx.row.payment_method_id,
            allow_card=PaymentMethodKind.card in allowed,
            allow_bank=PaymentMethodKind.bank in allowed,
            allowed_labels=[_METHOD_LABELS[kind] for kind in allowed],
            **more,
        )

    def method(self, incoming: Incoming) -> Page:
        opened = self._open_with_buyer(incoming, check_csrf=incoming.method == "POST")
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        if incoming.method == "GET":
            return self._method_page(ctx, buyer)
        chosen = (incoming.form or {}).get("method_id", "")
        methods = {m.id: m for m in self._methods(ctx, buyer)}
        method = methods.get(chosen)
        if method is None:
            return self._method_page(
                ctx, buyer, 400, errors={"method_id": "Choose one of your payment methods."}
            )
        problem = _decline_reason(method, self.payments.clock.now_us())
        if problem is not None:
            return self._method_page(ctx, buyer, 400, errors={"method_id": problem})
        with self.database.write() as conn:
            sql.choose_method(conn, ctx.row.id, method.id)
        return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/review")

    def add_card(self, incoming: Incoming) -> Page:
        opened = self._open_with_buyer(incoming, check_csrf=True)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        form = incoming.form or {}
        values = {"number": "", "expiry": form.get("expiry", "")[:16]}
        if PaymentMethodKind.card not in ctx.request.methods:
            return self._method_page(ctx, buyer, 400, errors={"card": "Cards are not allowed."})
        try:
            month, year = parse_expiry(form.get("expiry", "").strip())
        except DirectoryError as error:
            return self._method_page(
                ctx, buyer, 400, errors={"expiry": _sentence(str(error))}, values=values
            )
        try:
            self.directory.add_card(
                buyer.id, form.get("number", "")[:64], month, year, form.get("holder") or None
            )
        except DirectoryError as error:
            return self._method_page(
                ctx, buyer, 400, errors={"number": _sentence(str(error))}, values=values
            )
        return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/method")

    def add_bank(self, incoming: Incoming) -> Page:
        opened = self._open_with_buyer(incoming, check_csrf=True)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        form = incoming.form or {}
        if PaymentMethodKind.bank not in ctx.request.methods:
            return self._method_page(
                ctx, buyer, 400, errors={"account": "Bank accounts are not allowed."}
            )
        try:
            self.directory.add_bank(
                buyer.id, form.get("routing", "")[:32], form.get("account", "")[:32]
            )
        except DirectoryError as error:
            return self._method_page(
                ctx,
                buyer,
                400,
                errors={"account": _sentence(str(error))},
                values={"routing": form.get("routing", "")[:32]},
            )
        return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/method")

    # -- review, confirm, cancel -----------------------------------------------------------

    def review(self, incoming: Incoming) -> Page:
        opened = self._open_with_buyer(incoming, check_csrf=False)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        method = self._chosen(ctx, buyer)
        if method is None:
            return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/method")
        return self._view(ctx, "review.html", buyer=buyer.name, method=_describe(method))

    def _chosen(self, ctx: _Context, buyer: Party) -> PaymentMethod | None:
        if ctx.row.payment_method_id is None:
            return None
        methods = {m.id: m for m in self._methods(ctx, buyer)}
        return methods.get(ctx.row.payment_method_id)

    def confirm(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return self._to_merchant(ctx, ctx.row.result_url)
        buyer = self._buyer(ctx)
        if buyer is None:
            return _sign_in_first(ctx)
        method = self._chosen(ctx, buyer)
        if method is None:
            return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/method")
        request = ctx.request
        now = self.payments.clock.now_us()
        problem = _decline_reason(method, now)
        if problem is not None:
            return self._method_page(ctx, buyer, 400, errors={"method_id": problem})
        if request.valid_until is not None and request.valid_until <= now:
            return self._finish(
                ctx,
                {
                    "status": Status.caller_exception.value,
                    "errorMessage": "validityExpiry has already passed.",
                },
            )
        try:
            made = self._setup(ctx.merchant.id, buyer.id, method.id, request)
        except PaymentsError as error:
            status = REFUSAL_STATUS.get(error.refusal, Status.system_error)
            message = error.detail or str(error)
            return self._finish(ctx, {"status": status.value, "errorMessage": message})
        return self._finish(ctx, success_params(request, method, made))

    def _setup(
        self, caller_id: str, buyer_id: str, method_id: str, request: PipelineRequest
    ) -> InstrumentSetup:
        if request.pipeline is Pipeline.prepaid:
            return self.payments.setup_prepaid(
                SetupPrepaid(
                    caller_id=caller_id,
                    recipient_id=caller_id,
                    sender_id=buyer_id,
                    payment_method_id=method_id,
                    caller_reference_sender=request.caller_reference_sender,
                    caller_reference_funding=request.caller_reference_second,
                    funding_limit=request.limit,
                    valid_from=request.valid_from,
                    valid_until=request.valid_until,
                    payment_reason=request.payment_reason,
                )
            )
        return self.payments.setup_postpaid(
            SetupPostpaid(
                caller_id=caller_id,
                recipient_id=caller_id,
                sender_id=buyer_id,
                payment_method_id=method_id,
                caller_reference_sender=request.caller_reference_sender,
                caller_reference_settlement=request.caller_reference_second,
                credit_limit=request.limit,
                global_amount_limit=request.global_amount_limit,
                min_charge=request.min_charge,
                max_charge=request.max_charge,
                valid_from=request.valid_from,
                valid_until=request.valid_until,
                payment_reason=request.payment_reason,
            )
        )

    def cancel(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return self._to_merchant(ctx, ctx.row.result_url)
        return self._finish(ctx, {"status": Status.aborted.value})

    def no_method(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return self._to_merchant(ctx, ctx.row.result_url)
        allowed = ", ".join(
            code for code, kind in METHOD_CODES.items() if kind in ctx.request.methods
        )
        return self._finish(
            ctx,
            {
                "status": Status.payment_method_mismatch.value,
                "errorMessage": f"The buyer has none of the payment methods allowed ({allowed}).",
            },
        )

    def _finish(self, ctx: _Context, params: dict[str, str]) -> Page:
        """Sign the return URL, mark the pipeline finished, send the buyer there."""
        params = {**params, **ctx.request.references()}
        url = self._signed_return(ctx.incoming, ctx.request.return_url, params)
        with self.database.write() as conn:
            finished = sql.finish_pipeline(conn, ctx.row.id, url)
            if not finished:
                row = sql.load_pipeline(conn, ctx.row.id, self._now())
                assert row is not None
                assert row.result_url is not None
                url = row.result_url  # a concurrent confirm/cancel won: send its answer
        return self._to_merchant(ctx, url)

    def _to_merchant(self, ctx: _Context, url: str) -> Page:
        origin = security.origin_of(ctx.request.return_url)
        return Page(location=url, form_targets=(origin,) if origin else ())


def _sign_in_first(ctx: _Context) -> Page:
    return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/signin")


_SHORT_PASSWORD: Final = "Choose a password of at least 8 characters."  # noqa: S105
_TAKEN_EMAIL: Final = "An account with this email address already exists: sign in with it instead."


def _decline_reason(method: PaymentMethod, now_us: int) -> str | None:
    """Why a sandbox card cannot be used (docs/sandbox.md), checked when the buyer picks it."""
    if method.kind is not PaymentMethodKind.card:
        return None
    assert method.exp_month is not None
    assert method.exp_year is not None
    if card_expired(method.exp_month, method.exp_year, now_us):
        return "This card has expired. Choose another payment method."
    if method.behaviour is CardBehaviour.decline:
        return "This card was declined by the issuing bank. Choose another payment method."
    return None


def _describe(method: PaymentMethod) -> str:
    return method.describe()


def _money(value: Money | None) -> str | None:
    return None if value is None else f"${value.plain()} {value.currency}"


def _date(micros: int | None) -> str | None:
    if micros is None:
        return None
    return datetime.fromtimestamp(micros // 1_000_000, UTC).strftime("%d %B %Y, %H:%M UTC")


def _registration_errors(name: str, email: str, password: str, again: str) -> dict[str, str]:
    """Every mistake in the register form at once, by field (the form shows them together)."""
    errors: dict[str, str] = {}
    checks: tuple[tuple[str, Callable[[], object]], ...] = (
        ("name", lambda: normalise_name(name)),
        ("email", lambda: normalise_email(email)),
        ("password", lambda: check_password(password)),
    )
    for field_name, check in checks:
        try:
            check()
        except InvalidDetailsError as error:
            errors[field_name] = _sentence(str(error))
    if not name:
        errors["name"] = "Enter your name."
    if not email:
        errors["email"] = "Enter your email address."
    if len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = _SHORT_PASSWORD
    if password != again:
        errors["password2"] = "The two passwords differ."
    return errors


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def cobranded_routes(directory: Directory, payments: Payments, signer: Signer) -> list[BaseRoute]:
    """The routes of the Co-Branded UI, for :func:`penny.web.app.create_app`."""
    return CobrandedUi(directory, payments, signer).routes()
