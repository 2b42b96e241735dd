"""Signing in, registering and signing out, within a pipeline.

Failed sign-ins are limited per email address and per client address, account creations per
client (each costs an argon2 hash; a taken email counts too, so probing which emails have
accounts is limited as well: docs/security.md). Success gives the browser a new session id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from penny.domain.parties import (
    MIN_PASSWORD_LENGTH,
    DirectoryError,
    DuplicateEmailError,
    InvalidDetailsError,
    Party,
    check_password,
    normalise_email,
    normalise_name,
)
from penny.parties import Directory
from penny.web.cobranded import security
from penny.web.cobranded.http import PREFIX, Incoming, Page, Settings
from penny.web.cobranded.pipeline import Context, Pipelines
from penny.web.cobranded.views import finished, sentence, view

_SHORT_PASSWORD: Final = "Choose a password of at least 8 characters."  # noqa: S105
_TAKEN_EMAIL: Final = "An account with this email address already exists: sign in with it instead."


class SignInStep:
    """``…/signin`` (GET, POST), ``…/register`` (GET, POST) and ``…/signout`` (POST)."""

    def __init__(self, directory: Directory, settings: Settings, pipelines: Pipelines) -> None:
        self.directory = directory
        self.settings = settings
        self.pipelines = pipelines

    def signin(self, incoming: Incoming) -> Page:
        ctx = self.pipelines.context(incoming, check_csrf=incoming.method == "POST")
        ended = finished(ctx)
        if ended is not None:
            return ended
        if incoming.method == "GET":
            return view(ctx, "signin.html")
        form = incoming.form or {}
        email, password = form.get("email", "").strip(), form.get("password", "")
        now = self.pipelines.now()
        subjects = [f"email:{email.lower()[:254]}", f"client:{incoming.client[:64]}"]
        limits = (security.SIGNIN_MAX_PER_EMAIL, security.SIGNIN_MAX_PER_CLIENT)
        if self.pipelines.rate_limited(subjects, limits, now):
            return view(
                ctx,
                "signin.html",
                429,
                errors={"form": "Too many failed sign-in attempts. Wait 15 minutes and try again."},
                values={"email": email},
            )
        party = self.directory.authenticate_buyer(email, password) if email and password else None
        if party is None:
            self.pipelines.record_failure(subjects, now)
            return view(
                ctx,
                "signin.html",
                400,
                errors={"form": "The email address or the password is wrong."},
                values={"email": email},
            )
        return self._signed_in(ctx, party.id)

    def register(self, incoming: Incoming) -> Page:
        ctx = self.pipelines.context(incoming, check_csrf=incoming.method == "POST")
        ended = finished(ctx)
        if ended is not None:
            return ended
        if incoming.method == "GET":
            return view(ctx, "register.html")
        form = incoming.form or {}
        name, email = form.get("name", "").strip(), form.get("email", "").strip()
        password = form.get("password", "")
        errors = _registration_errors(name, email, password, form.get("password2", ""))
        party: Party | None = None
        now = self.pipelines.now()
        attempts = [f"register:{incoming.client[:64]}"]
        limited = (security.REGISTER_MAX_PER_CLIENT,)
        if not errors and self.pipelines.rate_limited(attempts, limited, now):
            errors["form"] = "Too many accounts were created from here. Wait 15 minutes."
        elif not errors:
            # Every well-formed attempt counts (each costs a hash), a taken email too: that is
            # what limits probing which emails have accounts (docs/security.md).
            self.pipelines.record_failure(attempts, now)
            try:
                party = self.directory.create_personal(name, email, password)
            except DuplicateEmailError:
                errors["email"] = _TAKEN_EMAIL
            except DirectoryError as error:
                errors["form"] = sentence(str(error))
        if party is None:
            return view(
                ctx, "register.html", 400, errors=errors, values={"name": name, "email": email}
            )
        return self._signed_in(ctx, party.id)

    def signout(self, incoming: Incoming) -> Page:
        ctx = self.pipelines.context(incoming, check_csrf=True)
        return self._signed_in(ctx, None)

    def _signed_in(self, ctx: Context, party_id: str | None) -> Page:
        """Give the browser a new session id (and CSRF token) for ``party_id``."""
        cookie = self.pipelines.sign_in(ctx, party_id)
        step = "method" if party_id else "signin"
        return Page(
            location=f"{PREFIX}/pipelines/{ctx.row.id}/{step}",
            set_cookie=cookie,
            secure=self.settings.secure(ctx.incoming),
        )


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
            errors[field_name] = sentence(str(error))
    if not name:
        errors["name"] = "Enter your name."
    if not email:
        errors["email"] = "Enter your email address."
    if len(password) < MIN_PASSWORD_LENGTH:
        errors["password"] = _SHORT_PASSWORD
    if password != again:
        errors["password2"] = "The two passwords differ."
    return errors
