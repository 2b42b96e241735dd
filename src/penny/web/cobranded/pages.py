"""The Co-Branded UI pages: start, sign in or register, payment method, review, confirm/cancel.

:class:`CobrandedUi` serves ``/cobranded-ui/…`` (routes from :func:`cobranded_routes`). Each
request is read on the event loop (query and a size-limited form body) and served in the thread
pool, because every step touches the database. The steps live in their own modules (``start``,
``signin``, ``methods``, ``confirm``), over the pipeline service (``pipeline``: sessions,
pipelines, sign-in limits in :mod:`penny.storage.cobranded_sql`) and ``views`` (templates and
rendering). A finished pipeline ends in a redirect to the merchant's ``returnURL`` signed by
:class:`~penny.signing.Signer` (spec §3).

Configuration (environment, read when the application is built; :class:`Settings`):

* ``PENNY_CBUI_ALLOW_UNSIGNED=1`` accepts start requests without a ``signature`` (default:
  refused). An unsigned request's ``returnURL`` is never trusted for an error redirect.
* ``PENNY_PUBLIC_URL`` is Penny's public base URL, used in ``certificateUrl``; by default the
  URL the request came to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from penny.clock import Clock, SystemClock
from penny.fps.wire import new_request_id
from penny.parties import Directory
from penny.services.payments import Payments
from penny.signing import Signer
from penny.web.cobranded.confirm import ConfirmStep
from penny.web.cobranded.http import (
    ALLOW_UNSIGNED_ENV,
    PREFIX,
    START_PATH,
    BadRequestError,
    Incoming,
    Page,
    Settings,
    read_incoming,
)
from penny.web.cobranded.methods import MethodStep
from penny.web.cobranded.pipeline import Pipelines
from penny.web.cobranded.recipient import RecipientStep
from penny.web.cobranded.signin import SignInStep
from penny.web.cobranded.start import StartStep
from penny.web.cobranded.views import Views, problem
from penny.web.logs import log_page

__all__ = ["ALLOW_UNSIGNED_ENV", "CobrandedUi", "Settings", "cobranded_routes"]

logger = logging.getLogger(__name__)


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
        self.settings = settings or Settings.from_env()
        #: Sessions and sign-in attempts run on real time; validity on the payments clock.
        self.pipelines = Pipelines(directory, web_clock or SystemClock())
        self.views = Views(sandbox=self.settings.sandbox)
        self.recipient = RecipientStep(directory, payments, signer, self.settings, self.pipelines)
        self.start = StartStep(self.recipient)
        self.signin = SignInStep(directory, self.settings, self.pipelines)
        self.methods = MethodStep(directory, payments, self.pipelines)
        self.confirm = ConfirmStep(payments, signer, self.settings, self.pipelines, self.methods)

    def routes(self) -> list[BaseRoute]:
        pipeline = f"{PREFIX}/pipelines/{{pid}}"
        start, signin, methods, confirm = self.start, self.signin, self.methods, self.confirm
        steps: list[tuple[str, Callable[[Incoming], Page], list[str]]] = [
            (START_PATH, start.start, ["GET"]),
            (pipeline, start.resume, ["GET"]),
            (f"{pipeline}/signin", signin.signin, ["GET", "POST"]),
            (f"{pipeline}/register", signin.register, ["GET", "POST"]),
            (f"{pipeline}/method", methods.method, ["GET", "POST"]),
            (f"{pipeline}/card", methods.add_card, ["POST"]),
            (f"{pipeline}/bank", methods.add_bank, ["POST"]),
            (f"{pipeline}/review", confirm.review, ["GET"]),
            (f"{pipeline}/confirm", confirm.confirm, ["POST"]),
            (f"{pipeline}/cancel", confirm.cancel, ["POST"]),
            (f"{pipeline}/none", confirm.no_method, ["POST"]),
            (f"{pipeline}/signout", signin.signout, ["POST"]),
            # the Recipient pipeline (#19)
            (f"{pipeline}/recipient", self.recipient.page, ["GET"]),
            (f"{pipeline}/recipient/signin", self.recipient.signin, ["POST"]),
            (f"{pipeline}/recipient/confirm", self.recipient.confirm, ["POST"]),
            (f"{pipeline}/recipient/cancel", self.recipient.cancel, ["POST"]),
        ]
        routes: list[BaseRoute] = [
            Route(f"{PREFIX}/static/penny.css", self.stylesheet, methods=["GET"])
        ]
        routes += [
            Route(path, self._endpoint(path, page), methods=verbs) for path, page, verbs in steps
        ]
        return routes

    async def stylesheet(self, _request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(self.views.css, media_type="text/css", headers=headers)

    def _endpoint(
        self, route: str, handler: Callable[[Incoming], Page]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter_ns()
            try:
                incoming = await read_incoming(request)
                page = await run_in_threadpool(handler, incoming)
            except BadRequestError as error:
                page = problem(error.status, error.title, error.message)
            except Exception:
                logger.exception("Co-Branded UI request failed")
                page = problem(
                    503,
                    "Penny could not finish this step",
                    "Nothing was changed. Go back to the merchant's site and try again.",
                )
            answer = self.views.render(page)
            took = (time.perf_counter_ns() - started) // 1000
            log_page(new_request_id(), request.method, route, answer.status_code, took)
            return answer

        return endpoint


def cobranded_routes(directory: Directory, payments: Payments, signer: Signer) -> list[BaseRoute]:
    """The routes of the Co-Branded UI, for :func:`penny.web.app.create_app`."""
    return CobrandedUi(directory, payments, signer).routes()
