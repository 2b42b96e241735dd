# shellcheck shell=bash
# Shared setup for scripts/test and scripts/run; source it, don't execute it.
#
# After sourcing, the working directory is the repository root and .venv/ holds an up-to-date
# editable install of penny with the extras named by PENNY_EXTRAS (comma-separated; unset means
# "dev,charts", everything the tests need; scripts/run sets it empty: only what serving needs):
#   (a) pick a Python >= 3.11 (PENNY_PYTHON overrides the choice);
#   (b) create .venv if it is missing or unusable (installing Debian's python3-venv if needed);
#   (c) pip install -e '.[EXTRAS]' and -e clients/python (penny-client, which `penny api` uses),
#       but only when either pyproject.toml changed since the last install or those extras were
#       not installed yet (an install with more extras serves for fewer).
# It also defines penny_ensure_postgres, which scripts/test calls to make sure PostgreSQL server
# binaries exist (tests start their own throwaway clusters with them), and
# penny_ensure_chromium, which makes sure Debian's chromium is there for the browser tests,
# penny_ensure_npm, which makes sure npm is there to fetch axe-core for them, and
# penny_ensure_patroni, which installs Patroni, etcd and pgBackRest for the high-availability tests.

# pip: no "running as root" warning, no version nag.
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

PENNY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PENNY_ROOT"

penny_log() {
    printf '==> %s\n' "$*" >&2
}

penny_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo if there is one.
penny_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        penny_die "need root to run '$*' (not root, and no sudo); install it by hand and retry"
    fi
}

penny_apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || penny_die "apt-get not found: install $* with your system's package manager"
    penny_log "installing Debian packages: $*"
    penny_as_root apt-get update -q
    penny_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

# True when "$1" runs and is Python >= 3.11.
penny_python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

# (a) choose an interpreter
penny_pick_python() {
    local candidate
    for candidate in ${PENNY_PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && penny_python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    penny_die "no Python >= 3.11 found (tried ${PENNY_PYTHON:-} python3 python3.13 python3.12 python3.11)"
}

# (b) create .venv if missing or broken
penny_ensure_venv() {
    if [ -x .venv/bin/python ] && penny_python_ok .venv/bin/python \
        && .venv/bin/python -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    local python
    python="$(penny_pick_python)"
    penny_log "creating .venv with $python ($("$python" --version 2>&1))"
    rm -rf .venv
    if ! "$python" -m venv .venv; then
        # Debian's python3 ships without ensurepip unless python3-venv is installed.
        rm -rf .venv
        local version
        version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        if ! penny_apt_install "python${version}-venv"; then
            penny_apt_install python3-venv
        fi
        "$python" -m venv .venv || penny_die "could not create .venv with $python"
    fi
}

# (c) install the project when pyproject.toml changed since the last install, or when extras
# it has not installed yet are wanted. The stamp holds the pyproject.toml hash, then one line per
# installed extra.
PENNY_EXTRAS="${PENNY_EXTRAS-dev,charts}"

penny_ensure_install() {
    local stamp=.venv/.penny-pyproject.sha256 wanted extra missing=""
    wanted="$(cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(head -n 1 "$stamp")" = "$wanted" ]; then
        for extra in ${PENNY_EXTRAS//,/ }; do
            grep -qx "$extra" <(tail -n +2 "$stamp") || missing="$missing $extra"
        done
        [ -z "$missing" ] && return 0
    fi
    if [ -n "$PENNY_EXTRAS" ]; then
        penny_log "installing penny with its extras ($PENNY_EXTRAS) into .venv"
        .venv/bin/pip install -q --upgrade pip
        .venv/bin/pip install -q -e ".[$PENNY_EXTRAS]" -e clients/python
    else
        penny_log "installing penny (what serving needs) into .venv"
        .venv/bin/pip install -q -e . -e clients/python
    fi
    { printf '%s\n' "$wanted"; printf '%s\n' ${PENNY_EXTRAS//,/ }; } >"$stamp"
}

# (d) PostgreSQL server binaries, found the way penny.devtools.pgcluster.find_pg_bindir does
penny_have_postgres() {
    local bindir initdb
    if command -v pg_config >/dev/null 2>&1; then
        bindir="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$bindir" ] && [ -x "$bindir/initdb" ]; then
            return 0
        fi
    fi
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        if [ -x "$initdb" ]; then
            return 0
        fi
    done
    command -v initdb >/dev/null 2>&1
}

penny_ensure_postgres() {
    if penny_have_postgres; then
        return 0
    fi
    penny_log "no PostgreSQL server binaries found"
    penny_apt_install postgresql
    penny_have_postgres || penny_die "PostgreSQL server binaries still missing after installing postgresql"
}

# (e) Debian's chromium, which the Co-Branded UI browser tests drive through Playwright
# (Playwright's own browser download is not used).
penny_ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    penny_log "no /usr/bin/chromium found"
    penny_apt_install chromium
    [ -x /usr/bin/chromium ] || penny_die "chromium still missing after installing it"
}

# (e2) npm: the account site's browser tests install axe-core (the accessibility checker) from
# the npm registry into a cache folder (tests/browser_support.py); nothing is vendored.
penny_ensure_npm() {
    if command -v npm >/dev/null 2>&1; then
        return 0
    fi
    penny_log "no npm found"
    penny_apt_install npm
    command -v npm >/dev/null 2>&1 || penny_die "npm still missing after installing it"
}

# (f) Debian's patroni, etcd-server and pgbackrest: the high-availability tests start a
# three-node Patroni cluster on etcd and back it up with pgBackRest
# (penny.devtools.patroni.ensure_installed does the same from Python).
penny_ensure_patroni() {
    local missing=()
    command -v patroni >/dev/null 2>&1 || missing+=(patroni)
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    penny_log "missing: ${missing[*]}"
    penny_apt_install "${missing[@]}"
    command -v patroni >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 \
        && command -v pgbackrest >/dev/null 2>&1 \
        || penny_die "patroni, etcd or pgbackrest still missing after installing them"
}

penny_ensure_venv
penny_ensure_install
