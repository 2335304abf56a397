"""Superset settings for reading the published S&OP plan (see docs/bi.md, "Superset").

Everything Superset keeps (its metadata database, logs) lives in ``$SOP_SUPERSET_HOME``
(default ``$SOP_HOME/superset``). The secret key comes from ``SUPERSET_SECRET_KEY`` or,
when that is not set, from a random key written once into that folder; none is in the repo.
"""

import os
import secrets
from pathlib import Path

_home = Path(
    os.environ.get("SOP_SUPERSET_HOME")
    or Path(os.environ.get("SOP_HOME", ".sop")).resolve() / "superset"
)
_home.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if os.environ.get("SUPERSET_SECRET_KEY"):
        return os.environ["SUPERSET_SECRET_KEY"]
    path = _home / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(42))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
SQLALCHEMY_DATABASE_URI = f"sqlite:///{_home / 'superset.db'}"
# no example data, no telemetry, no thumbnails/alerts workers: a local read-only BI client
SUPERSET_LOAD_EXAMPLES = False
FEATURE_FLAGS = {"DASHBOARD_RBAC": False, "ALERT_REPORTS": False, "THUMBNAILS": False}
WTF_CSRF_ENABLED = True
WTF_CSRF_EXEMPT_LIST = ["superset.views.core.log", "superset.charts.data.api.data"]
TALISMAN_ENABLED = False
# results are never cached: a new publication is visible to the next query
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 60}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache"}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache"}
# SQL Lab may only read (the connection is read-only as well)
PREVENT_UNSAFE_DB_CONNECTIONS = True
