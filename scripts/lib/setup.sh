# shellcheck shell=bash
# Shared setup for scripts/test, scripts/demo and scripts/build-docsite: sourced, never executed.
# scripts/demo asks for the "demo" part only, scripts/build-docsite for "docs" (see dicom_network_setup).
#
# Brings a fresh Debian 12 machine (root, PyPI + Debian's apt reachable, nothing else)
# to the state the tests need, and does nothing that is already done:
#   - apt packages (apt-get update runs once, and only when something is missing)
#   - .venv with the machine's python3 and requirements*.txt, held to constraints-dev.txt
#     (re-installed only when those files or the interpreter change)
#   - .venv/py39: a Python 3.9 venv with pynetdicom 2.0.x for target-compatibility
#     tests and the compat stage's real-peer run, when pyenv has a 3.9 (exported as
#     DICOM_NETWORK_PY39), held to constraints-py39.txt
#   - the pip bootstrap ansible-test's sanity venvs expect, generated locally
#   - .cache/wheelhouse: pure-Python pynetdicom/pydicom wheels for the echo_venv role's
#     offline tests (exported as DICOM_NETWORK_WHEELHOUSE)
#   - .cache/collections: community.general from PyPI's ansible package, for the
#     echo_audit e-mail test (exported as DICOM_NETWORK_EXTRA_COLLECTIONS)
#   - .venv/core/<X.Y>: one venv per supported ansible-core minor (CORE_VERSIONS), each held to
#     constraints-core/<X.Y>.txt, for scripts/test's versions stage; only when that stage runs
#     (dicom_network_setup_core, exported as DICOM_NETWORK_CORE_VENVS)
#
# After dicom_network_setup: REPO_ROOT, VENV, VENV_PY, DICOM_NETWORK_PY39 (possibly
# empty, exported), PATH ending with .venv/bin, and the functions log/ansible_test_seed_pip/
# dicom_network_write_constraints/dicom_network_setup_core.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${DICOM_NETWORK_VENV:-$REPO_ROOT/.venv}"
VENV_PY="$VENV/bin/python"
SETUP_PYTHON="${DICOM_NETWORK_PYTHON:-python3}"

# The demo needs its peers and a venv; the tests also need the browser, namespaces, firewall
# tools and shellcheck (chromium alone is ~100 MB to download on a fresh machine).
APT_PACKAGES_DEMO=(dcmtk orthanc python3-venv ca-certificates)
APT_PACKAGES=(
    "${APT_PACKAGES_DEMO[@]}" openssl iproute2 iptables nftables chromium chromium-driver
    rsync git shellcheck
)

log() { printf '==> %s\n' "$*" >&2; }

# pip, minus this machine's warnings about configured local indexes that hold no copy
# of a package (noise on every install); the exit code is pip's.
_pip() {
    local python="$1"
    shift
    "$python" -m pip --disable-pip-version-check "$@" \
        2> >(grep -v "^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.$" >&2)
}

_setup_apt() {
    local missing=() pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == ii* ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        log "missing apt packages (${missing[*]}) and not root: install them first"
        return 1
    fi
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: recommends of chromium/orthanc pull in hundreds of MB we never use.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints a fingerprint of everything that decides a venv's contents.
_fingerprint() {
    local python="$1"
    shift
    {
        "$python" -c 'import sys; print(sys.version)'
        cat "$@"
    } | sha256sum | cut -d' ' -f1
}

_setup_venv() {
    if [[ ! -x "$VENV_PY" ]] || ! "$VENV_PY" -c 'import sys' 2>/dev/null; then
        log "venv: creating $VENV with $(command -v "$SETUP_PYTHON")"
        rm -rf "$VENV"
        "$SETUP_PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.dicom-network-stamp" want
    want="$(_fingerprint "$VENV_PY" "$REPO_ROOT/requirements.txt" "$REPO_ROOT/requirements-dev.txt" \
        "$REPO_ROOT/constraints-dev.txt")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    log "venv: installing requirements-dev.txt (constraints-dev.txt)"
    _pip "$VENV_PY" install -q -r "$REPO_ROOT/requirements-dev.txt" -c "$REPO_ROOT/constraints-dev.txt"
    printf '%s\n' "$want" >"$stamp"
}

# Python 3.9 venv for target-compatibility tests (the module must run on old targets).
_setup_py39() {
    DICOM_NETWORK_PY39=""
    local base venv="$VENV/py39"
    base="$(compgen -G "${PYENV_ROOT:-/root/.pyenv}/versions/3.9.*/bin/python" | sort -V | tail -n1 || true)"
    if [[ -z "$base" ]]; then
        log "py39: no pyenv Python 3.9 found; target-compatibility tests will skip"
        return 0
    fi
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        log "py39: creating $venv with $base"
        rm -rf "$venv"
        "$base" -m venv "$venv"
    fi
    local stamp="$venv/.dicom-network-stamp" want
    want="$(_fingerprint "$venv/bin/python" "$REPO_ROOT/requirements.txt" "$REPO_ROOT/requirements-py39.txt" \
        "$REPO_ROOT/constraints-py39.txt")"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        log "py39: installing requirements-py39.txt (constraints-py39.txt)"
        _pip "$venv/bin/python" install -q -r "$REPO_ROOT/requirements-py39.txt" -c "$REPO_ROOT/constraints-py39.txt"
        printf '%s\n' "$want" >"$stamp"
    fi
    DICOM_NETWORK_PY39="$venv/bin/python"
}

# constraints-dev.txt / constraints-py39.txt / constraints-core/<X.Y>.txt: every package of .venv /
# .venv/py39 / .venv/core/<X.Y>, transitive ones included, at the version the gates last passed with
# (for a core venv, its ansible-core line is the exact patch release the versions stage tests). The requirements files say what we need and
# which ranges we accept; the constraints make a fresh machine install exactly what CI has (one once
# got a newer cryptography than CI had, and a test failed). Regenerate them from venvs that pass:
#   source scripts/lib/setup.sh && dicom_network_setup test && dicom_network_setup_core &&
#       dicom_network_write_constraints
# To move to newer versions, or when a changed requirement contradicts a pin (pip then refuses to
# install), delete the offending lines (or all of them), run scripts/test, then regenerate.
dicom_network_write_constraints() {
    local name python venv what
    for name in dev py39 "${CORE_VERSIONS[@]/#/core/}"; do
        python="$VENV_PY" venv=.venv what="requirements-$name.txt"
        if [[ "$name" == py39 ]]; then
            python="${DICOM_NETWORK_PY39:-}" venv=.venv/py39
            [[ -n "$python" ]] || { log "constraints: no Python 3.9 venv, constraints-py39.txt left as it is"; continue; }
        elif [[ "$name" == core/* ]]; then
            python="$VENV/$name/bin/python" venv=".venv/$name" what="ansible-core ${name#core/}.x and requirements.txt"
            [[ -x "$python" ]] || { log "constraints: no $venv, constraints-$name.txt left as it is"; continue; }
        fi
        {
            printf '# Generated by dicom_network_write_constraints (scripts/lib/setup.sh): pip freeze of %s on\n' "$venv"
            printf '# Python %s; setup.sh installs %s with -c this file. Edit the requirements\n' \
                "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$what"
            printf '# files, not this one (setup.sh says when to regenerate it).\n'
            # Not the collection itself, nor anything installed from a path (neither is reproducible).
            _pip "$python" freeze --exclude-editable | grep -v -i -e '^dicom[-_.]network' -e ' @ '
        } >"$REPO_ROOT/constraints-$name.txt.tmp"
        mv -f "$REPO_ROOT/constraints-$name.txt.tmp" "$REPO_ROOT/constraints-$name.txt"
        log "constraints: wrote constraints-$name.txt"
    done
}

# --- ansible-core versions (scripts/test versions) ----------------------------------------
# meta/runtime.yml promises ansible-core >= 2.15; hospitals run AAP 2.4/2.5 (2.15/2.16). Each minor
# listed here gets its own venv, .venv/core/<X.Y>: ansible-core held to the exact patch release in
# constraints-core/<X.Y>.txt, plus requirements.txt, since the audit's source hosts run the module
# with that venv's own Python (local connection). DICOM_NETWORK_CORE_VERSIONS="2.15 2.20" narrows
# the list (one venv, one version's tests).
CORE_VERSIONS=(2.15 2.16 2.17 2.18 2.19 2.20)
# The controller Python each minor gets: the machine's 3.11 wherever ansible-core supports it as a
# controller (2.15: 3.9-3.11, 2.16/2.17: 3.10-3.12, 2.18/2.19: 3.11-3.13); 2.20 needs 3.12+.
declare -A CORE_PYTHON=([2.15]="3.11" [2.16]="3.11" [2.17]="3.11" [2.18]="3.11" [2.19]="3.11" [2.20]="3.12 3.13")

# _core_python MINORS...: the real path of the newest pyenv CPython of the first minor found
# (never a pyenv shim: a shim fails for versions that are not the selected one), else /usr/bin's.
_core_python() {
    local minor candidate
    for minor in "$@"; do
        candidate="$(compgen -G "${PYENV_ROOT:-/root/.pyenv}/versions/$minor.*/bin/python$minor" | sort -V | tail -n1 || true)"
        [[ -n "$candidate" ]] || candidate="$(compgen -G "/usr/bin/python$minor" || true)"
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# _setup_core_venv X.Y PYTHON: create/refresh .venv/core/X.Y (prints nothing on success; a log of
# pip's output is left in .venv/core/X.Y.log when it fails).
_setup_core_venv() {
    local version="$1" base="$2" venv="$VENV/core/$1" constraints="$REPO_ROOT/constraints-core/$1.txt"
    local next="${1%.*}.$((${1#*.} + 1))" stamp want
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null ||
        [[ "$(readlink -f "$venv/bin/python")" != "$(readlink -f "$base")" ]]; then
        rm -rf "$venv"
        "$base" -m venv "$venv" || return 1
    fi
    stamp="$venv/.dicom-network-stamp"
    want="$(_fingerprint "$venv/bin/python" "$REPO_ROOT/requirements.txt" "$constraints")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    # The series bound on the command line: a constraints file naming another minor makes pip fail
    # instead of testing the wrong ansible-core under this one's name.
    _pip "$venv/bin/python" install -q "ansible-core>=$version,<$next" -r "$REPO_ROOT/requirements.txt" \
        -c "$constraints" || return 1
    printf '%s\n' "$want" >"$stamp"
}

# dicom_network_setup_core: every venv of CORE_VERSIONS (or DICOM_NETWORK_CORE_VERSIONS), pip runs in
# parallel (they are network-bound; 6 in a row took 6x as long on an empty pip cache). Exports
# DICOM_NETWORK_CORE_VENVS ("2.15=/path/.venv/core/2.15 2.16=..."), DICOM_NETWORK_CORE_WANTED (the
# versions asked for) and DICOM_NETWORK_CORE_MISSING (asked for, but no interpreter: the versions
# stage fails on them in CI and skips them elsewhere). Returns 1 when an install failed.
dicom_network_setup_core() {
    local version base i rc=0 t0=$SECONDS
    local -a wanted pids=() names=()
    read -ra wanted <<<"${DICOM_NETWORK_CORE_VERSIONS:-${CORE_VERSIONS[*]}}"
    DICOM_NETWORK_CORE_VENVS="" DICOM_NETWORK_CORE_MISSING=""
    mkdir -p "$VENV/core"
    for version in "${wanted[@]}"; do
        if [[ -z "${CORE_PYTHON[$version]:-}" || ! -f "$REPO_ROOT/constraints-core/$version.txt" ]]; then
            log "core: ansible-core $version is not one of CORE_VERSIONS (${CORE_VERSIONS[*]})"
            return 1
        fi
        # shellcheck disable=SC2086 # a list of minors
        if ! base="$(_core_python ${CORE_PYTHON[$version]})"; then
            log "core: no Python ${CORE_PYTHON[$version]// / or } for ansible-core $version (pyenv has none)"
            DICOM_NETWORK_CORE_MISSING+="${DICOM_NETWORK_CORE_MISSING:+ }$version"
            continue
        fi
        _setup_core_venv "$version" "$base" >"$VENV/core/$version.log" 2>&1 &
        pids+=($!) names+=("$version")
        DICOM_NETWORK_CORE_VENVS+="${DICOM_NETWORK_CORE_VENVS:+ }$version=$VENV/core/$version"
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            log "core: setting up .venv/core/${names[$i]} failed:"
            cat "$VENV/core/${names[$i]}.log" >&2
            rc=1
        fi
    done
    DICOM_NETWORK_CORE_WANTED="${wanted[*]}"
    export DICOM_NETWORK_CORE_VENVS DICOM_NETWORK_CORE_WANTED DICOM_NETWORK_CORE_MISSING
    log "core: ${#pids[@]} ansible-core venv(s) ready in $((SECONDS - t0))s${DICOM_NETWORK_CORE_MISSING:+ (no interpreter for $DICOM_NETWORK_CORE_MISSING)}"
    return "$rc"
}

# Wheelhouse for the echo_venv role's offline tests: both requirement sets of
# roles/echo_venv/defaults/main.yml (keep them equal), pure-Python wheels, each for the oldest
# Python it serves, exactly as playbooks/wheelhouse.yml downloads them. Re-downloaded only when
# the requirements change.
_setup_wheelhouse() {
    local dir="$REPO_ROOT/.cache/wheelhouse" stamp="$REPO_ROOT/.cache/wheelhouse.stamp" want
    local -a py38=("pynetdicom>=2.0,<2.1" "pydicom>=2.4,<2.5") py310=("pynetdicom>=3.0,<4" "pydicom>=3.0,<4")
    local -a pure=(--only-binary=:all: --platform any --abi none --implementation py)
    want="$(printf '%s\n' "${py38[@]}" -- "${py310[@]}" | sha256sum | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! compgen -G "$dir/*.whl" >/dev/null; then
        log "wheelhouse: downloading pynetdicom/pydicom wheels into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        _pip "$VENV_PY" download -q --dest "$dir" "${pure[@]}" --python-version 3.8 "${py38[@]}" || return 1
        _pip "$VENV_PY" download -q --dest "$dir" "${pure[@]}" --python-version 3.10 "${py310[@]}" || return 1
        printf '%s\n' "$want" >"$stamp"
    fi
    DICOM_NETWORK_WHEELHOUSE="$dir"
}

# community.general, only for the echo_audit e-mail test (community.general.mail): Galaxy is not
# reachable, so it comes from the `ansible` package on PyPI, which bundles the collections released
# for one ansible-core (ansible 12 = ansible-core 2.19). Only that collection is extracted (12 MB of
# a 54 MB wheel; measured 2-6 s once, 0.01 s when already there). Exported as
# DICOM_NETWORK_EXTRA_COLLECTIONS, a collections path; never on ANSIBLE_COLLECTIONS_PATH by default,
# so every other test sees a controller without community.general, as users may have.
_setup_extra_collections() {
    local dir="$REPO_ROOT/.cache/collections" want='ansible>=12,<13' tmp
    local stamp="$dir/.dicom-network-stamp" manifest="$dir/ansible_collections/community/general/MANIFEST.json"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" || ! -f "$manifest" ]]; then
        log "collections: extracting community.general from PyPI's $want into $dir"
        mkdir -p "$dir"
        tmp="$(mktemp -d "$dir/.download.XXXXXX")"
        if ! _pip "$VENV_PY" download -q --no-deps --only-binary=:all: --dest "$tmp" "$want" ||
            ! "$VENV_PY" - "$tmp" "$dir" <<'PY'; then
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
prefix = "ansible_collections/community/general/"
(wheel,) = tmp.glob("ansible-*.whl")
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(tmp / "x", [name for name in archive.namelist() if name.startswith(prefix)])
target = dest / prefix
shutil.rmtree(target, ignore_errors=True)
target.parent.mkdir(parents=True, exist_ok=True)
(tmp / "x" / prefix).rename(target)
PY
            rm -rf "$tmp"
            return 1
        fi
        rm -rf "$tmp"
        printf '%s\n' "$want" >"$stamp"
    fi
    DICOM_NETWORK_EXTRA_COLLECTIONS="$dir"
}

# ansible-test builds a venv per sanity test and bootstraps pip in it by running
# ~/.ansible/test/cache/get_pip_<version>.py, which it would download from a host that
# is not reachable here. Seed that file with a script doing the same job offline:
# ensurepip (the wheel ships with the interpreter), then `pip install <its arguments>`
# from PyPI as configured in pip.conf (ansible-test scrubs PIP_* variables).
ansible_test_seed_pip() {
    local version cache_dir target tmp
    version="$("$VENV_PY" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3"))["pip"])
PY
)" || { log "ansible-test: cannot tell which pip bootstrap it wants"; return 1; }
    cache_dir="$HOME/.ansible/test/cache"
    target="$cache_dir/get_pip_${version//./_}.py"
    mkdir -p "$cache_dir"
    tmp="$(mktemp "$cache_dir/.get_pip.XXXXXX")"
    cat >"$tmp" <<'PY'
"""Offline stand-in for get-pip.py, generated by dicom.network scripts/lib/setup.sh.

ansible-test runs it as `get_pip <pip install args> [--no-setuptools] [--no-wheel]`
inside a venv created without pip.
"""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own
# environment, and the pip below needs pip.conf (index, CA bundle).
subprocess.check_call([sys.executable, "-m", "ensurepip"], stdout=subprocess.DEVNULL)
pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
if "--no-setuptools" in sys.argv:
    # ensurepip of Python < 3.12 also installs setuptools; honour get-pip's option.
    subprocess.call(pip + ["uninstall", "-q", "-y", "setuptools"])
if subprocess.call(pip + ["install", "-q"] + [a for a in args if a != "--disable-pip-version-check"]) != 0:
    # The pinned pip only matters for reproducibility; the bundled one works.
    sys.stderr.write("get_pip stand-in: could not install %s; keeping ensurepip's pip\n" % args)
PY
    if cmp -s "$tmp" "$target"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$target"
    fi
}

# dicom_network_setup demo|docs|test: "demo" sets up only what scripts/demo needs (its apt packages and
# .venv); "docs" only .venv (scripts/build-docsite: antsibull-docs and Sphinx need no apt package); "test"
# everything, as the Python 3.9 venv, the wheelhouse and community.general serve tests alone.
dicom_network_setup() {
    if [[ "${1:-}" == demo ]]; then
        _setup_apt "${APT_PACKAGES_DEMO[@]}"
        _setup_venv
    elif [[ "${1:-}" == docs ]]; then
        _setup_venv
    else
        _setup_apt "${APT_PACKAGES[@]}"
        _setup_venv
        _setup_py39
        export DICOM_NETWORK_PY39
        _setup_wheelhouse
        export DICOM_NETWORK_WHEELHOUSE
        _setup_extra_collections
        export DICOM_NETWORK_EXTRA_COLLECTIONS
    fi
    # .venv/bin goes LAST on PATH: pynetdicom installs console scripts named like DCMTK's
    # tools (echoscu, echoscp, findscu, ...) and the tests mean Debian's DCMTK ones.
    # Scripts call venv tools by their full path; tests use sys.executable.
    local entry path="" entries
    IFS=: read -ra entries <<<"$PATH"
    for entry in "${entries[@]}"; do
        [[ -z "$entry" || "$entry" == "$VENV/bin" ]] || path="${path:+$path:}$entry"
    done
    export PATH="$path:$VENV/bin"
}
