#!/usr/bin/env bash
# Install what building and testing outbox needs on Debian 12 (idempotent).
# Runs apt-get only when something is missing; needs root (or sudo) then.
set -euo pipefail

#   bash scripts/install-deps.sh [--build-postgres] [--package] [package ...]
# --build-postgres (or its old name --debug-postgres): also what
# scripts/build-postgres.sh needs to build PostgreSQL from its release tarball
# (bison and flex only if a generated file has to be remade; readline and zlib
# as Debian's server has them). --package: what scripts/package.sh needs to
# build the Debian package and check it (debhelper, pg_buildext, lintian).
# libcurl4-openssl-dev and libssl-dev: the HTTP sink (libcurl's multi socket
# interface, libcrypto's HMAC); python3: the HTTP engine test's local server.
# librdkafka-dev and pkg-config: the Kafka sink (its headers include rdkafka_mock.h, the tests'
# Kafka cluster, test/kafka/mockcluster.c); kcat: the tests read topics back with it.
pkgs=(build-essential git postgresql-15 postgresql-server-dev-15 libfmt-dev libipc-run-perl libcurl4-openssl-dev libssl-dev python3
      librdkafka-dev pkg-config kcat)
for arg in "$@"; do
    case $arg in
    --build-postgres|--debug-postgres) pkgs+=(bzip2 bison flex pkg-config libreadline-dev zlib1g-dev perl) ;;
    --package) pkgs+=(debhelper dpkg-dev postgresql-server-dev-all lintian) ;;
    *) pkgs+=("$arg") ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
