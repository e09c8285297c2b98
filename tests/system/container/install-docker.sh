#!/usr/bin/env bash
# What tests/system/test_container.py needs, from Debian's packages, installed only where missing:
# the Docker engine (docker.io), Docker Compose v2.24 or later, and debootstrap (the test's base
# image; no image registry is reachable from this project's machines). `make install-dev` runs it.
#
# compose.yaml's optional `.env` (env_file `required: false`) needs Compose v2.24 or later.
# Debian 12's docker-compose is Compose v1 (1.29), which cannot read it; Debian 13's is v2.26,
# one Go binary that needs only libc6 (>= 2.34; Debian 12 has 2.36). On Debian 12 that package is
# fetched with an apt configuration of its own (a temporary sources list and state), so the
# system's sources stay as they are, and installed with dpkg.
set -euo pipefail

SUDO=${SUDO-$([ "$(id -u)" = 0 ] || echo sudo)}
MIN_COMPOSE=${MIN_COMPOSE:-2.24}
TRIXIE_MIRROR=${TRIXIE_MIRROR:-http://deb.debian.org/debian}

at_least() { [ "$(printf '%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }  # at_least MIN VERSION

compose_version() {
    local version
    for command in "docker compose" docker-compose; do
        version=$($command version --short 2>/dev/null) || continue
        version=${version#v}
        if at_least "$MIN_COMPOSE" "$version"; then
            echo "$version"
            return 0
        fi
    done
    return 1
}

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q "${missing[@]}"
fi

compose_version >/dev/null && exit 0

candidate=$(apt-cache policy docker-compose 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && at_least "$MIN_COMPOSE" "${candidate#*:}"; then
    $SUDO apt-get install -y -q docker-compose
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb $TRIXIE_MIRROR trixie main" >"$work/sources.list"
    apt_options=(
        -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/none"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root"
    )
    $SUDO apt-get "${apt_options[@]}" update -q
    (cd "$work" && $SUDO apt-get "${apt_options[@]}" download docker-compose)
    $SUDO dpkg -i "$work"/docker-compose_*.deb
fi
compose_version >/dev/null || {
    echo "Docker Compose $MIN_COMPOSE or later is still missing" >&2
    exit 1
}
