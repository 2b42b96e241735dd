"""The JSON API (``/v1``): a second front door on the same payments core, ledger and group
commit as the FPS API (issue #17; ARCHITECTURE.md, "The JSON API").

* :mod:`.models` — the request and response bodies (msgspec Structs), the one source of the
  OpenAPI document's schemas;
* :mod:`.errors` — the error object, mapped from the refusal table (``domain/errors.py``);
* :mod:`.auth` — bearer secrets over the existing API keys;
* :mod:`.resources` — validate (body → payments request or query) and render (result → JSON);
* :mod:`.routes` — the table of routes, the one list the front and the OpenAPI document read;
* :mod:`.openapi` — the OpenAPI 3.1 document and the reference page.

The HTTP edge is :mod:`penny.web.api` (a bare ASGI front, like ``/``'s).
"""
