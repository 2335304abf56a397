#!/usr/bin/env bash
# Apache Superset for the published plan, in a virtual environment of its own (.venv-superset):
# it pins its own Flask/SQLAlchemy/pandas stack, which must not touch the pipeline's .venv.
#   bash bi/superset/install.sh            install, set up Superset's metadata, import the dashboard
#   bash bi/superset/install.sh --venv-only  only install the packages (what the slow tests need)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
VENV=${SUPERSET_VENV:-.venv-superset}
STAMP="$VENV/.installed"
if [[ ! -f "$STAMP" || bi/superset/constraints.txt -nt "$STAMP" ]]; then
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  # versions pinned in bi/superset/constraints.txt (apache-superset 6.1.0 also needs rich and
  # cachetools, which its wheel does not declare, and Flask-Caching < 2.5)
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c bi/superset/constraints.txt apache-superset duckdb-engine duckdb rich cachetools flask-caching
  touch "$STAMP"
fi
[[ "${1:-}" == "--venv-only" ]] && exit 0

export SOP_HOME=${SOP_HOME:-$PWD/.sop}
export SOP_SUPERSET_HOME=${SOP_SUPERSET_HOME:-$SOP_HOME/superset}
export SUPERSET_CONFIG_PATH=$PWD/bi/superset/superset_config.py FLASK_APP=superset
mkdir -p "$SOP_SUPERSET_HOME"
DB="$SOP_HOME/published/sop.duckdb"
if [[ ! -f "$DB" ]]; then
  echo "$DB does not exist: publish a plan first (make demo), then run make superset again." >&2
  exit 2
fi
SS="$VENV/bin/superset"
"$SS" db upgrade >"$SOP_SUPERSET_HOME/setup.log" 2>&1
ADMIN_CRED_FILE="$SOP_SUPERSET_HOME/admin_password"
if [[ ! -f "$ADMIN_CRED_FILE" ]]; then
  (umask 077; "$VENV/bin/python" -c "import secrets; print(secrets.token_urlsafe(12))" >"$ADMIN_CRED_FILE")
fi
"$SS" fab create-admin --username admin --firstname SOP --lastname Admin \
  --email admin@localhost --password "$(cat "$ADMIN_CRED_FILE")" >>"$SOP_SUPERSET_HOME/setup.log" 2>&1
"$SS" init >>"$SOP_SUPERSET_HOME/setup.log" 2>&1
.venv/bin/python bi/superset/bundle.py --db "$DB" --out "$SOP_SUPERSET_HOME/sop_dashboard.zip"
"$SS" import-dashboards -p "$SOP_SUPERSET_HOME/sop_dashboard.zip" -u admin >>"$SOP_SUPERSET_HOME/setup.log" 2>&1
echo "Superset is set up in $SOP_SUPERSET_HOME: start it with 'make superset-run', open"
echo "http://127.0.0.1:${SUPERSET_PORT:-8088}/superset/dashboard/sop-plan/ and log in as admin"
echo "with the password in $ADMIN_CRED_FILE."
