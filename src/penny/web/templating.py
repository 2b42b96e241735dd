"""The Jinja environments of Penny's web pages: a site's own templates first, then the ones
every site shares (``penny/web/templates/``: the HTML document around each page, and the
form fields both the hosted pages and the account site show)."""

from __future__ import annotations

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape


def page_templates(package: str) -> Environment:
    """Templates of the site in ``package`` (its ``templates/`` folder) over the shared ones,
    autoescaped, with block tags' own lines and indentation trimmed."""
    return Environment(
        loader=ChoiceLoader(
            [PackageLoader(package, "templates"), PackageLoader("penny.web", "templates")]
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
