"""What the pages show: the template context of a pipeline's page, the error page, and the
rendering of a :class:`~penny.web.cobranded.http.Page` into a response (Jinja2, autoescaped,
with the security headers and the session cookie).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, Final, Protocol

from jinja2 import Environment
from starlette.responses import HTMLResponse, RedirectResponse, Response

from penny.domain.model import AmountType, UsageLimitType
from penny.domain.parties import Party, PaymentMethod
from penny.epoch import MICROS_PER_SECOND, to_datetime, to_seconds
from penny.money import Money
from penny.signing import Signer
from penny.storage import cobranded_sql as sql
from penny.web.cobranded import security
from penny.web.cobranded.http import Incoming, Page, Settings
from penny.web.cobranded.params import Pipeline, PipelineRequest, StartError
from penny.web.cobranded.pipeline import Context
from penny.web.templating import page_templates


class Views:
    """The templates and the stylesheet, loaded once; ``sandbox`` puts the "Sandbox" badge
    at the top of every page."""

    def __init__(self, *, sandbox: bool = True) -> None:
        self.sandbox = sandbox
        self.templates = page_templates("penny.web.cobranded")
        self.css = resources.files("penny.web.cobranded").joinpath("static/penny.css").read_bytes()

    def render(self, page: Page) -> Response:
        cookie = (security.COOKIE_NAME, security.COOKIE_PATH)
        return rendered(page, self.templates, {"sandbox": self.sandbox}, cookie)


def rendered(
    page: Page,
    templates: Environment,
    base: Mapping[str, Any],
    cookie: tuple[str, str],
) -> Response:
    """``page`` as a response with the security headers (the hosted pages' and the account
    site's): a 303 to its location, or its template rendered with ``base`` under the page's own
    context. Its cookie (``cookie``: the name and path) is set for the session's life, or ended
    when the page sets it to ``""``."""
    headers = security.security_headers(page.form_targets)
    if page.location is not None:
        response: Response = RedirectResponse(page.location, 303, headers=headers)
    else:
        assert page.template is not None
        body = templates.get_template(page.template).render({**base, **page.context})
        response = HTMLResponse(body, page.status, headers=headers)
    name, path = cookie
    if page.set_cookie == "":
        response.delete_cookie(name, path=path, httponly=True, samesite="lax")
    elif page.set_cookie is not None:
        response.set_cookie(
            name,
            page.set_cookie,
            max_age=security.SESSION_TTL_US // 1_000_000,
            path=path,
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


def refused_start(
    incoming: Incoming,
    settings: Settings,
    signer: Signer,
    error: StartError,
    merchant: Party,
    back: tuple[str, Mapping[str, str]] | None,
    title: str = "This payment request cannot be completed",
) -> Page:
    """The error page of a refused start request; with ``back`` (the request's ``returnURL``
    and the return parameters, when that URL may be trusted) it links to the signed return."""
    url = None
    if back is not None:
        url = signer.signed_redirect(settings.base_url(incoming), back[0], dict(back[1]))
    return problem(400, title, error.message, back=url, merchant=merchant.name, fields=error.fields)


class _Returning(Protocol):
    @property
    def website_description(self) -> str: ...
    @property
    def return_url(self) -> str: ...


class Framed(Protocol):
    """What :func:`pipeline_page` needs of a pipeline's context (token and Recipient)."""

    @property
    def row(self) -> sql.PipelineRow: ...
    @property
    def session(self) -> sql.SessionRow: ...
    @property
    def merchant(self) -> Party: ...
    @property
    def request(self) -> _Returning: ...


def pipeline_page(ctx: Framed, template: str, status: int, fields: dict[str, Any]) -> Page:
    """A page of the pipeline ``ctx`` (a token's or a Recipient's): what every pipeline
    template is told (the pipeline, the CSRF token, the merchant and its site, no errors or
    values yet), then ``fields``; forms may post to the return URL's origin."""
    context: dict[str, Any] = {
        "pid": ctx.row.id,
        "csrf": ctx.session.csrf_token,
        "merchant": ctx.merchant.name,
        "site": ctx.request.website_description,
        "errors": {},
        "values": {},
        **fields,
    }
    origin = security.origin_of(ctx.request.return_url)
    return Page(status, template, context, form_targets=(origin,) if origin else ())


def view(ctx: Context, template: str, status: int = 200, **more: Any) -> Page:
    """A page of the pipeline ``ctx``: what every template is told, and ``more``."""
    request = ctx.request
    context: dict[str, Any] = {
        "pipeline": request.pipeline.value,
        "prepaid": request.pipeline is Pipeline.prepaid,
        "limit": _money(request.limit),
        "global_limit": _money(request.global_amount_limit),
        "min_charge": _money(request.min_charge),
        "max_charge": _money(request.max_charge),
        "valid_from": _date(request.valid_from),
        "valid_until": _date(request.valid_until),
        "reason": request.payment_reason,
        "amount_label": AMOUNT_LABELS[request.pipeline],
        "token": request.pipeline.value if request.pipeline.issues_token else None,
        "terms": token_terms(request) if request.pipeline.issues_token else None,
        "amount": _money(request.transaction_amount),
        "period": request.recurring_period,
        "reserve": request.reserve,
        "editing": request.old_token_id,
        "signed_in": ctx.session.party_id is not None,
        **more,
    }
    return pipeline_page(ctx, template, status, context)


#: What the headline amount (``PipelineRequest.limit``) is, by pipeline: the page's big number.
AMOUNT_LABELS: Final = {
    Pipeline.prepaid: "Prepaid balance up to",
    Pipeline.postpaid: "Credit limit",
    Pipeline.single_use: "One payment of up to",
    Pipeline.multi_use: "Total payments up to",
    Pipeline.recurring: "Each payment up to",
}


def token_terms(request: PipelineRequest) -> list[tuple[str, str]]:
    """What a SingleUse, MultiUse or Recurring token allows (or an EditToken's new terms), as
    the summary's rows."""
    rows = [("Authorization", _TOKEN_TITLES[request.pipeline])]
    if request.old_token_id is not None:  # EditToken: the new terms of an existing token
        rows.append(("Replaces", f"your authorization {request.old_token_id}"))
    amount = _money(request.transaction_amount)
    if amount is not None:
        kind = request.amount_type or AmountType.maximum
        rows.append((_AMOUNT_LABELS[kind], amount))
    if request.pipeline is Pipeline.recurring and request.recurring_period:
        rows.append(("How often", f"at most once every {request.recurring_period}"))
    total = _money(request.global_amount_limit)
    if total is not None:
        rows.append(("Total payments up to", total))
    for limit in request.usage_limits:
        if limit.type is UsageLimitType.amount:
            what = f"up to {_money(Money(limit.value, request.limit.currency))}"
        else:
            what = f"at most {limit.value} payment{'s' if limit.value != 1 else ''}"
        rows.append(("Limit", f"{what} {_per(limit.period)}"))
    starts = _date(request.valid_from) or "now"
    ends = _date(request.valid_until)
    rows.append(
        ("Valid", f"from {starts}" + (f" until {ends}" if ends else _DEFAULT_END[request.pipeline]))
    )
    if request.payment_reason:
        rows.append(("Reason", request.payment_reason))
    return rows


_TOKEN_TITLES: Final = {
    Pipeline.single_use: "one payment",
    Pipeline.multi_use: "several payments",
    Pipeline.recurring: "a recurring payment",
}
_AMOUNT_LABELS: Final = {
    AmountType.exact: "Each payment",
    AmountType.maximum: "Each payment up to",
    AmountType.minimum: "Each payment at least",
}
_DEFAULT_END: Final = {
    Pipeline.single_use: ", for 3 hours",
    Pipeline.multi_use: ", for one year",
    Pipeline.recurring: ", with no end date",
}


def _per(period: str | None) -> str:
    return "in all" if period is None else f"every {period}"


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
