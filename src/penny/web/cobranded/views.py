"""What the pages show: the template context of a pipeline's page, the error page, and the
rendering of a :class:`~penny.web.cobranded.http.Page` into a response (Jinja2, autoescaped,
with the security headers and the session cookie).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from penny.domain.parties import PaymentMethod
from penny.epoch import MICROS_PER_SECOND, to_datetime, to_seconds
from penny.money import Money
from penny.storage import cobranded_sql as sql
from penny.web.cobranded import security
from penny.web.cobranded.http import Page
from penny.web.cobranded.params import Pipeline
from penny.web.cobranded.pipeline import Context


class Views:
    """The templates and the stylesheet, loaded once; ``sandbox`` puts the "Sandbox" badge
    at the top of every page."""

    def __init__(self, *, sandbox: bool = True) -> None:
        self.sandbox = sandbox
        self.templates = Environment(
            loader=PackageLoader("penny.web.cobranded", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.css = resources.files("penny.web.cobranded").joinpath("static/penny.css").read_bytes()

    def render(self, page: Page) -> Response:
        headers = security.security_headers(page.form_targets)
        if page.location is not None:
            response: Response = RedirectResponse(page.location, 303, headers=headers)
        else:
            assert page.template is not None
            context = {"sandbox": self.sandbox, **page.context}
            body = self.templates.get_template(page.template).render(context)
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


def problem(status: int, title: str, message: str, *, back: str | None = None, **more: Any) -> Page:
    """The error page (``back``: the signed return URL it links to, when there is one; the
    buyer follows the link: no timed redirect, WCAG 2.2.1)."""
    return Page(
        status,
        "problem.html",
        {"title": title, "message": message, "back": back, **more},
        form_targets=(),
    )


def view(ctx: Context, template: str, status: int = 200, **more: Any) -> Page:
    """A page of the pipeline ``ctx``: what every template is told, and ``more``."""
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


def finished(ctx: Context) -> Page | None:
    """The "finished" page of a pipeline that has ended (a link back to its return URL)."""
    if ctx.row.state != sql.FINISHED:
        return None
    assert ctx.row.result_url is not None
    return view(ctx, "finished.html", back=ctx.row.result_url)


def to_merchant(ctx: Context, url: str) -> Page:
    """The redirect to the merchant's signed return ``url``."""
    origin = security.origin_of(ctx.request.return_url)
    return Page(location=url, form_targets=(origin,) if origin else ())


def describe(method: PaymentMethod) -> str:
    return method.describe()


def sentence(text: str) -> str:
    """An error's text as a sentence: capitalised, one full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def plain_money(value: Money) -> str:
    """``$25.00 USD``: how the pages write an amount."""
    return f"${value.plain()} {value.currency}"


def _money(value: Money | None) -> str | None:
    return None if value is None else plain_money(value)


def _date(micros: int | None) -> str | None:
    if micros is None:
        return None
    return to_datetime(to_seconds(micros) * MICROS_PER_SECOND).strftime("%d %B %Y, %H:%M UTC")
