#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the second-warehouse test
# (tests/test_postgres_warehouse.py starts a throwaway cluster of its own from these binaries;
# `make test` runs this first). Non-interactive; does nothing when the server binaries are
# already there. Needs root (or sudo) and Debian's package archive. The package's default
# cluster is not created, so nothing listens on port 5432 afterwards.
set -euo pipefail

for initdb in /usr/lib/postgresql/*/bin/initdb; do
  if [[ -x "$initdb" ]]; then
    echo "postgresql already installed: $("$initdb" --version)"
    exit 0
  fi
done

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    echo "install_postgres.sh: run as root (or install sudo) to apt-get install postgresql" >&2
    exit 1
  fi
fi

# no main cluster on 5432: the tests make their own in a temp folder
$SUDO mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
  echo "create_main_cluster = false" | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
for initdb in /usr/lib/postgresql/*/bin/initdb; do
  echo "installed: $("$initdb" --version)"
done
