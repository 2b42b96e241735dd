"""Shared pytest fixtures: database URLs for both stores Penny supports (SQLite and PostgreSQL).

Fixtures
--------
``pg_server_url`` (session)
    SQLAlchemy URL of an admin database on a PostgreSQL server whose role may CREATE DATABASE.
    If ``PENNY_TEST_DATABASE_URL`` is set, that server is used as is; otherwise one throwaway
    :class:`~penny.devtools.pgcluster.PgCluster` is started for the whole session (only when a
    test first needs it) and destroyed at the end.

``database_url_for_module`` (module, parametrized ``sqlite`` / ``postgresql``)
    As ``database_url``, one per store for a whole module: for worlds that are costly to build
    and that every test only reads or compares before and after.

``database_url`` (function, parametrized ``sqlite`` / ``postgresql``)
    A URL of a brand-new, empty database, private to one test: an SQLite file in ``tmp_path``, or
    a freshly created PostgreSQL database (dropped after the test). A test that takes it runs once
    per store; select one with ``-k sqlite`` / ``-k postgresql`` or ``-m "not postgresql"`` (the
    PostgreSQL variant carries the ``postgresql`` marker). When no PostgreSQL variant is selected,
    no cluster is started.

``browser`` (module) and ``axe`` (module)
    Debian's Chromium under Playwright, one per test module that asks (not session-wide:
    Playwright's sync API keeps an event loop on the main thread while it runs, and other modules
    call ``asyncio.run``), and the text of axe-core (tests/browser_support.py).

Helpers
-------
``sqlite_url(directory)`` builds the SQLite URL used for the ``sqlite`` variant, for tests that
need more than one database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from penny.devtools.pgcluster import PgCluster, create_database_at, drop_database_at

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from console_support import Shop

DATABASE_URL_ENV = "PENNY_TEST_DATABASE_URL"
"""Environment variable naming an existing PostgreSQL server (admin URL) to test against."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers this file puts on fixture variants (``--strict-markers`` is on)."""
    config.addinivalue_line(
        "markers", "postgresql: the test runs against a PostgreSQL database (needs a server)"
    )


def sqlite_url(directory: Path, filename: str = "penny.db") -> str:
    """SQLAlchemy URL of the SQLite database file ``directory / filename``."""
    return "sqlite:///" + str(directory / filename)


def unique_database_name(prefix: str = "penny_test") -> str:
    """A PostgreSQL database name no other test (or test run) uses: ``<prefix>_<12 hex digits>``."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Admin URL of the session's PostgreSQL server (see the module docstring)."""
    configured = os.environ.get(DATABASE_URL_ENV)
    if configured:
        yield configured
        return
    with PgCluster.start() as cluster:
        yield cluster.url()


#: Both stores, as fixture parameters (the PostgreSQL one marked).
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]


@contextmanager
def _new_database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A new, empty database of the store ``request.param``: an SQLite file in ``directory``,
    or a PostgreSQL database created now and dropped afterwards."""
    if request.param == "sqlite":
        yield sqlite_url(directory)
        return
    # Looked up lazily so that a run selecting only sqlite variants never starts a server.
    server_url: str = request.getfixturevalue("pg_server_url")
    name = unique_database_name()
    url = create_database_at(server_url, name)
    try:
        yield url
    finally:
        drop_database_at(server_url, name)


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a new, empty database private to this test, once per store."""
    with _new_database(request, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=STORES)
def database_url_for_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of a new, empty database per store, shared by one module's tests."""
    with _new_database(request, tmp_path_factory.mktemp("module")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the asking module's tests (Playwright is imported only when asked)."""
    from browser_support import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def axe() -> str:
    """The text of axe-core's ``axe.min.js`` (installed with npm when missing)."""
    from browser_support import axe_source

    return axe_source()


@pytest.fixture
def shop(database_url: str) -> Iterator[Shop]:
    """The console's shop (``console_support.make_shop``) on the test's store."""
    from console_support import make_shop

    made = make_shop(database_url)
    yield made
    made.world.db.dispose()
