"""The account site's plumbing: sessions, sign-in and sign-out, CSRF, answers, the action log.

:class:`ConsoleSite` serves ``/account/…``. It reuses the hosted pages' machinery
(:mod:`penny.web.cobranded`): the request reader (a size-limited form, the client address),
:class:`~penny.web.cobranded.http.Page`, the random ids and their hashes, the constant-time
CSRF comparison, the security headers (the same ``default-src 'none'`` CSP) and the sign-in
failure table, so a buyer's failed attempts count against one limit on both sites. Its own
cookie (``penny_console``, path ``/account``) names a row of ``console_sessions``.

Every page but sign-in goes through :meth:`ConsoleSite.page`: it loads the session, sends a
browser with none (or one of the other kind of account) to sign in, checks the CSRF token of
every POST, and turns :class:`NotFoundError` into the one 404 page, the same for an unknown id
and another party's. Merchants sign in with an API key (access key id and secret, the only
credentials a business account has); a session ends when its key is revoked.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any, Final, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from penny.clock import Clock, SystemClock
from penny.domain.model import Instrument
from penny.domain.parties import Party, PartyKind
from penny.fps.wire import new_request_id
from penny.parties import Directory
from penny.services.payment_queries import BalanceQuery, TwoBalances
from penny.services.payments import Payments
from penny.storage import cobranded_sql, console_sql
from penny.web.cobranded import Settings, security
from penny.web.cobranded.http import BadRequestError, Incoming, Page, read_incoming
from penny.web.cobranded.views import rendered
from penny.web.console import views
from penny.web.logs import log_page
from penny.web.templating import page_templates

logger = logging.getLogger(__name__)

PREFIX: Final = "/account"
COOKIE_NAME: Final = "penny_console"
HOME: Final = {PartyKind.business: f"{PREFIX}/merchant", PartyKind.personal: f"{PREFIX}/buyer"}
SIGNIN: Final = {
    PartyKind.business: f"{PREFIX}/signin/merchant",
    PartyKind.personal: f"{PREFIX}/signin/buyer",
}


_EXPIRED_FORM: Final = (
    "The form was not sent from this page (or the page is too old). Nothing was changed. "
    "Reload the page and try again."
)


class NotFoundError(Exception):
    """No such object for this party (unknown, or another party's: the same answer)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in request: who, in which session, and what was sent."""

    party: Party
    session: console_sql.SessionRow
    incoming: Incoming

    @property
    def actor(self) -> str:
        return self.session.actor

    @property
    def form(self) -> dict[str, str]:
        return self.incoming.form or {}


Handler = Callable[[Viewer], Page | Response]
_Row = TypeVar("_Row")


class ConsoleSite:
    """The account site over the directory and the payments service."""

    def __init__(
        self,
        directory: Directory,
        payments: Payments,
        *,
        settings: Settings | None = None,
        web_clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.payments = payments
        self.database = directory.database
        self.settings = settings or Settings.from_env()
        #: Sessions and sign-in attempts run on real time; payments on the payments clock.
        self.web_clock = web_clock or SystemClock()
        self.templates = page_templates("penny.web.console")
        self.templates.filters["money"] = views.money
        self.templates.filters["when"] = views.when
        self.css = resources.files("penny.web.console").joinpath("static/console.css").read_bytes()

    def routes(self, pages: list[BaseRoute]) -> list[BaseRoute]:
        """The site's own routes (style sheet, index, sign-in, sign-out) and ``pages``."""
        return [
            Route(f"{PREFIX}/static/console.css", self.stylesheet, methods=["GET"]),
            self._route(PREFIX, self.index, ["GET"]),
            self._route(f"{PREFIX}/", self.index, ["GET"]),
            self._route(SIGNIN[PartyKind.business], self.signin_merchant, ["GET", "POST"]),
            self._route(SIGNIN[PartyKind.personal], self.signin_buyer, ["GET", "POST"]),
            self._route(f"{PREFIX}/signout", self.signout, ["POST"]),
            *pages,
        ]

    async def stylesheet(self, _request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(self.css, media_type="text/css", headers=headers)

    def _route(
        self, path: str, handler: Callable[[Incoming], Page | Response], methods: list[str]
    ) -> Route:
        return Route(path, self._plain(path, handler), methods=methods)

    # -- answering -----------------------------------------------------------------------

    def _plain(
        self, route: str, handler: Callable[[Incoming], Page | Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter_ns()
            answer = await self._answer(request, handler)
            took = (time.perf_counter_ns() - started) // 1000
            log_page(new_request_id(), request.method, route, answer.status_code, took)
            return answer

        return endpoint

    async def _answer(
        self, request: Request, handler: Callable[[Incoming], Page | Response]
    ) -> Response:
        """What ``handler`` answers (a page rendered), or the error page."""
        try:
            incoming = await read_incoming(request)
            incoming = dataclasses.replace(incoming, cookie=request.cookies.get(COOKIE_NAME))
            answer = await run_in_threadpool(handler, incoming)
        except BadRequestError as error:
            answer = self.problem(error.status, error.title, error.message)
        except Exception:
            logger.exception("account site request failed")
            answer = self.problem(
                503, "Penny could not answer", "Nothing was changed. Try again in a moment."
            )
        return answer if isinstance(answer, Response) else self.render(answer)

    def page(
        self, kind: PartyKind, handler: Handler, route: str
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page only a signed-in party of ``kind`` sees (POSTs carry the session's token);
        ``route`` its path pattern, for the access log."""

        def guarded(incoming: Incoming) -> Page | Response:
            viewer = self.viewer(incoming)
            if viewer is None or viewer.party.kind is not kind:
                return Page(location=SIGNIN[kind])
            if incoming.method == "POST" and not security.same_token(
                viewer.session.csrf_token, (incoming.form or {}).get("csrf")
            ):
                return self.problem(403, "This form has expired", _EXPIRED_FORM)
            try:
                return handler(viewer)
            except NotFoundError:
                return self.not_found()

        return self._plain(route, guarded)

    def route(self, kind: PartyKind, path: str, handler: Handler, methods: list[str]) -> Route:
        """A route to a page only a signed-in party of ``kind`` sees (:meth:`page`)."""
        return Route(path, self.page(kind, handler, path), methods=methods)

    def render(self, page: Page) -> Response:
        return rendered(page, self.templates, {}, (COOKIE_NAME, PREFIX))

    def view(self, viewer: Viewer, template: str, status: int = 200, **more: Any) -> Page:
        context: dict[str, Any] = {
            "csrf": viewer.session.csrf_token,
            "party": viewer.party,
            "actor": viewer.actor,
            "merchant_nav": viewer.party.kind is PartyKind.business,
            "path": viewer.incoming.path,
            "errors": {},
            "values": {},
            **more,
        }
        return Page(status, template, context)

    def problem(self, status: int, title: str, message: str) -> Page:
        return Page(status, "problem.html", {"title": title, "message": message})

    def not_found(self) -> Page:
        return self.problem(
            404, "Not found", "There is nothing here, or it is not yours to see. Go back."
        )

    def now(self) -> int:
        return self.web_clock.now_us()

    # -- sessions ------------------------------------------------------------------------

    def viewer(self, incoming: Incoming) -> Viewer | None:
        cookie = incoming.cookie
        if not cookie or len(cookie) > 128:
            return None
        with self.database.read() as conn:
            session = console_sql.load_session(conn, security.hash_id(cookie), self.now())
        if session is None:
            return None
        party = self.directory.party(session.party_id)
        if party is None:
            return None
        if party.kind is PartyKind.business and not self.directory.active_keys([session.actor]):
            return None  # the key it signed in with was revoked (here or with `penny keys`)
        return Viewer(party, session, incoming)

    def owned(
        self,
        load: Callable[[Any, list[str]], Mapping[str, _Row]],
        row_id: str,
        owner_of: Callable[[_Row], str],
        viewer: Viewer,
    ) -> _Row:
        """The row ``load`` finds for ``row_id`` (an id from the path) when ``owner_of`` it is
        the viewer; any other, or an id too long to be one, is not found."""
        with self.database.read() as conn:
            found = load(conn, [row_id]) if len(row_id) <= 64 else {}
        row = found.get(row_id)
        if row is None or owner_of(row) != viewer.party.id:
            raise NotFoundError
        return row

    def index(self, incoming: Incoming) -> Page:
        viewer = self.viewer(incoming)
        if viewer is None:
            return Page(location="/")
        return Page(location=HOME[viewer.party.kind])

    def _open_session(self, incoming: Incoming, party: Party, actor: str) -> Page:
        """A new session for ``party`` (the browser's old one, if any, ends)."""
        now = self.now()
        cookie = security.new_secret()
        row = console_sql.SessionRow(
            security.hash_id(cookie),
            party.id,
            actor,
            security.new_secret(),
            now + security.SESSION_TTL_US,
        )
        with self.database.write() as conn:
            console_sql.delete_expired(conn, now)
            if incoming.cookie and len(incoming.cookie) <= 128:
                console_sql.delete_session(conn, security.hash_id(incoming.cookie))
            console_sql.insert_session(conn, row, now)
            cobranded_sql.prune_failures(conn, now - security.SIGNIN_WINDOW_US)
        return Page(location=HOME[party.kind], set_cookie=cookie, secure=self._secure(incoming))

    def signout(self, incoming: Incoming) -> Page:
        viewer = self.viewer(incoming)
        form = incoming.form or {}
        if viewer is not None and security.same_token(viewer.session.csrf_token, form.get("csrf")):
            with self.database.write() as conn:
                console_sql.delete_session(conn, viewer.session.id_hash)
        return Page(location="/", set_cookie="")

    # -- signing in ----------------------------------------------------------------------

    def _signin_page(
        self, kind: PartyKind, incoming: Incoming, status: int = 200, **more: Any
    ) -> Page:
        """The sign-in form with a fresh pre-session token, in the form and in the cookie: a
        sign-in must come from this form (no signing a victim in as someone else)."""
        token = security.new_secret()
        context = {
            "merchant": kind is PartyKind.business,
            "csrf": token,
            "errors": {},
            "values": {},
            **more,
        }
        return Page(status, "signin.html", context, set_cookie=token, secure=self._secure(incoming))

    def _secure(self, incoming: Incoming) -> bool:
        return incoming.secure or (self.settings.public_url or "").startswith("https://")

    def _limited(self, subjects: list[str]) -> bool:
        since = self.now() - security.SIGNIN_WINDOW_US
        limits = (security.SIGNIN_MAX_PER_EMAIL, security.SIGNIN_MAX_PER_CLIENT)
        with self.database.read() as conn:
            return any(
                cobranded_sql.failures_since(conn, subject, since) >= limit
                for subject, limit in zip(subjects, limits, strict=True)
            )

    def _signin(
        self,
        kind: PartyKind,
        incoming: Incoming,
        subject: str,
        check: Callable[[], tuple[Party, str] | None],
        values: dict[str, str],
    ) -> Page:
        """One sign-in attempt: the form's token, the rate limit, then ``check`` (the party
        and who signed in, or None)."""
        if incoming.method == "GET":
            viewer = self.viewer(incoming)
            if viewer is not None and viewer.party.kind is kind:
                return Page(location=HOME[kind])
            return self._signin_page(kind, incoming)
        if not security.same_token(incoming.cookie or "", (incoming.form or {}).get("csrf")):
            return self._signin_page(
                kind, incoming, 403, errors={"form": _EXPIRED_FORM}, values=values
            )
        subjects = [subject, f"client:{incoming.client[:64]}"]
        if self._limited(subjects):
            message = "Too many failed sign-in attempts. Wait 15 minutes and try again."
            return self._signin_page(kind, incoming, 429, errors={"form": message}, values=values)
        found = check()
        if found is None:
            with self.database.write() as conn:
                cobranded_sql.record_failure(conn, subjects, self.now())
            wrong = "The access key or the secret is wrong."
            if kind is PartyKind.personal:
                wrong = "The email address or the password is wrong."
            return self._signin_page(kind, incoming, 400, errors={"form": wrong}, values=values)
        party, actor = found
        return self._open_session(incoming, party, actor)

    def signin_merchant(self, incoming: Incoming) -> Page:
        form = incoming.form or {}
        access_key, secret = form.get("access_key", "").strip()[:64], form.get("secret", "")

        def check() -> tuple[Party, str] | None:
            party = self._merchant_by_key(access_key, secret)
            return None if party is None else (party, access_key)

        subject = f"console-key:{access_key}"
        values = {"access_key": access_key}
        return self._signin(PartyKind.business, incoming, subject, check, values)

    def _merchant_by_key(self, access_key: str, secret: str) -> Party | None:
        return security.merchant_by_key(self.directory, access_key, secret)

    def signin_buyer(self, incoming: Incoming) -> Page:
        form = incoming.form or {}
        email, password = form.get("email", "").strip(), form.get("password", "")

        def check() -> tuple[Party, str] | None:
            party = self.directory.authenticate_buyer(email, password) if password else None
            return None if party is None else (party, party.email)

        # The hosted pages' subject: a buyer's failures count once against both sites.
        subject = f"email:{email.lower()[:254]}"
        return self._signin(PartyKind.personal, incoming, subject, check, {"email": email})

    # -- the log -------------------------------------------------------------------------

    def record(self, viewer: Viewer, action: str, subject: str, detail: str = "") -> None:
        with self.database.write() as conn:
            console_sql.record_action(
                conn, viewer.party.id, viewer.actor, action, subject, detail, self.now()
            )


class PagesOf:
    """A group of pages for one kind of account, under one path (the merchant console, the
    buyer account), over a :class:`ConsoleSite`."""

    kind: PartyKind
    base: str
    #: The group's pages, in the order they are matched: each one's path under :attr:`base`,
    #: the method of the group that answers it, and the HTTP methods it takes (each group
    #: lists them after its methods).
    pages: tuple[tuple[str, Callable[[Any, Viewer], Page | Response], tuple[str, ...]], ...]

    def __init__(self, site: ConsoleSite) -> None:
        self.site = site
        self.payments = site.payments
        self.directory = site.directory

    def balances(self, caller_id: str, instruments: Sequence[Instrument]) -> dict[str, TwoBalances]:
        """Each instrument's balance as ``caller_id`` reads it (GetPrepaidBalance or
        GetDebtBalance), all in one statement; one the caller may not read is left out."""
        queries = [BalanceQuery(i.kind, caller_id, i.id) for i in instruments]
        found = self.payments.balances(queries)
        return {
            i.id: answer
            for i, answer in zip(instruments, found, strict=True)
            if isinstance(answer, TwoBalances)
        }

    def routes(self) -> list[BaseRoute]:
        """A route for each of :attr:`pages`, answered by this group's method."""
        return [
            self.site.route(self.kind, f"{self.base}{path}", partial(answer, self), list(methods))
            for path, answer, methods in self.pages
        ]
