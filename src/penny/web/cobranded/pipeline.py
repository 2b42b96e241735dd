"""The pipeline service: what the pages know of sessions and pipelines, over
:mod:`penny.storage.cobranded_sql`.

A browser carries one random cookie, stored hashed; a pipeline belongs to the session that
started it; signing in (or out) gives the browser a new session id and CSRF token. Failed
sign-ins and account creations are counted per subject in the database, so the limit holds
across workers. Sessions and sign-in attempts run on real time (``web_clock``), validity on the
payments clock. Every method opens its own short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from penny.clock import Clock
from penny.domain.parties import Party, PartyKind
from penny.parties import Directory
from penny.storage import cobranded_sql as sql
from penny.web.cobranded import security
from penny.web.cobranded.http import BadRequestError, Incoming
from penny.web.cobranded.params import PipelineRequest
from penny.web.cobranded.recipient_params import PIPELINE as RECIPIENT
from penny.web.cobranded.recipient_params import RecipientRequest


@dataclass(frozen=True, slots=True)
class Context:
    """A pipeline request after its session and pipeline were checked."""

    incoming: Incoming
    session: sql.SessionRow
    row: sql.PipelineRow
    request: PipelineRequest
    merchant: Party


class Pipelines:
    """Sessions, pipelines and sign-in limits for the pages; the directory names the parties."""

    def __init__(self, directory: Directory, web_clock: Clock) -> None:
        self.directory = directory
        self.database = directory.database
        self.web_clock = web_clock

    def now(self) -> int:
        return self.web_clock.now_us()

    def _session(self, conn: Any, incoming: Incoming, now: int) -> sql.SessionRow | None:
        if not incoming.cookie or len(incoming.cookie) > 128:
            return None
        return sql.load_session(conn, security.hash_id(incoming.cookie), now)

    def open(
        self, incoming: Incoming, merchant: Party, parsed: PipelineRequest | RecipientRequest
    ) -> tuple[str, str | None, sql.SessionRow]:
        """Store a new pipeline for ``parsed`` in the browser's session (a new session when it
        has none): the pipeline id, the new session's cookie (``None`` if it had one), the
        session."""
        now = self.now()
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
                    parsed.pipeline_name,
                    parsed.to_json(),
                    None,
                    sql.OPEN,
                    None,
                    now + security.PIPELINE_TTL_US,
                ),
                now,
            )
        return pid, cookie, session

    def context(self, incoming: Incoming, *, check_csrf: bool) -> Context:
        """The pipeline a request names, if it belongs to the browser's session (and, with
        ``check_csrf``, the form carries the session's CSRF token); else BadRequestError."""
        session, row, merchant = self.opened(incoming, check_csrf=check_csrf)
        if row.pipeline_name == RECIPIENT:  # the Recipient pipeline has its own pages
            raise BadRequestError(
                404, "This page does not exist", "This step is not part of this pipeline."
            )
        return Context(incoming, session, row, PipelineRequest.from_json(row.params), merchant)

    def opened(
        self, incoming: Incoming, *, check_csrf: bool
    ) -> tuple[sql.SessionRow, sql.PipelineRow, Party]:
        """:meth:`context`'s checks, for any pipeline: its session, row and merchant."""
        pid = incoming.path_params.get("pid", "")
        now = self.now()
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
        return session, row, security.merchant_of(self.directory, row.caller_id)

    def buyer(self, ctx: Context) -> Party | None:
        """The signed-in buyer, or None (nobody, or not a personal account)."""
        party_id = ctx.session.party_id
        party = self.directory.party(party_id) if party_id else None
        if party is None or party.kind is not PartyKind.personal:
            return None
        return party

    def rate_limited(self, subjects: list[str], limits: tuple[int, ...], now: int) -> bool:
        """Whether any subject has reached its limit of failures in the sign-in window."""
        since = now - security.SIGNIN_WINDOW_US
        with self.database.read() as conn:
            return any(
                sql.failures_since(conn, subject, since) >= limit
                for subject, limit in zip(subjects, limits, strict=True)
            )

    def record_failure(self, subjects: list[str], now: int) -> None:
        with self.database.write() as conn:
            sql.record_failure(conn, subjects, now)

    def sign_in(self, ctx: Context, party_id: str | None) -> str:
        """Give the browser a new session id (and CSRF token) for ``party_id`` (``None``: signed
        out); the new cookie."""
        return self.sign_in_session(ctx.session, party_id)

    def sign_in_session(self, session: sql.SessionRow, party_id: str | None) -> str:
        """:meth:`sign_in` for any pipeline's session."""
        now = self.now()
        cookie = security.new_secret()
        new = sql.SessionRow(
            security.hash_id(cookie), party_id, security.new_secret(), now + security.SESSION_TTL_US
        )
        with self.database.write() as conn:
            sql.sign_in_session(conn, session.id_hash, new, now, party_id)
            sql.prune_failures(conn, now - security.SIGNIN_WINDOW_US)
        return cookie

    def choose_method(self, ctx: Context, method_id: str) -> None:
        with self.database.write() as conn:
            sql.choose_method(conn, ctx.row.id, method_id)

    def finish(self, ctx: Context, url: str) -> str:
        """Mark the pipeline finished with the signed return ``url``; the URL to send the buyer
        to (a concurrent confirm or cancel that finished it first wins)."""
        return self.finish_row(ctx.row.id, url)

    def finish_row(self, pid: str, url: str) -> str:
        """:meth:`finish` for any pipeline."""
        with self.database.write() as conn:
            finished = sql.finish_pipeline(conn, pid, url)
            if not finished:
                row = sql.load_pipeline(conn, pid, self.now())
                assert row is not None
                assert row.result_url is not None
                url = row.result_url  # a concurrent confirm/cancel won: send its answer
        return url
