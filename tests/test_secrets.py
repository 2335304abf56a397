"""No secret in the repository: settings with secrets come from the environment only.

(That the pipeline's logs, run history and outputs do not echo secret environment values
is tested on a real run: tests/test_pipeline.py and, through the `sop` command,
tests/test_run_faults.py.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: A line carrying this marker holds a fake secret on purpose (a test's planted value).
ALLOW = "pragma: allowlist secret"

_KEY_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^@\s/'\"]+)@"),
    # key = value / key: value with a literal value (not an env var reference)
    "secret literal": re.compile(
        rf"(?i)\b\w*{_KEY_WORDS}\w*\s*[:=]\s*(['\"]?)([^\s'\",)#]{{6,}})\1"
    ),
}
#: Values that reference the environment or are obviously placeholders.
_REFERENCE = re.compile(
    r"env_var\(|EnvVar\(|environ|getenv|\$\{|\{\{|<[^>]*>|^\*+$|^(?:none|null|true|false)$"
    r"|^(?:str|bool|int|float|bytes)\b|^(?:self|settings|cls|os)\.|\(",
    re.IGNORECASE,
)


def find_secrets(text: str, *, code: bool = False) -> list[tuple[int, str]]:
    """(line number, kind) of every line that looks like it holds a secret.

    Args:
        text: the file's text.
        code: Python source: only a quoted value is a literal (``password=pg_password``
            passes a variable).
    """
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if ALLOW in line:
            continue
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(line):
                value = match.group(match.lastindex) if match.lastindex else match.group(0)
                if kind in ("secret literal", "password in a URL") and _REFERENCE.search(value):
                    continue
                if kind == "secret literal" and code and not match.group(1):
                    continue
                if kind == "secret literal" and re.fullmatch(r"[\w.]+\.\w+", value):
                    continue  # an attribute or a dotted name (settings.pg_password), not a value
                found.append((number, kind))
    return found


def _tracked_files() -> list[Path]:
    """Files git tracks, and new files it would track (not ignored)."""
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_the_scanner_finds_planted_secrets() -> None:
    """The patterns are not toothless: each kind of leak is found, references are not."""
    leaks = [
        "-----BEGIN RSA PRIVATE KEY-----",  # pragma: allowlist secret
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",  # pragma: allowlist secret
        "url: postgresql://sop:hunter2hunter2@db.example.com:5432/sop",  # pragma: allowlist secret
        "password: 'correct-horse-battery'",  # pragma: allowlist secret
        'SOP_PG_PASSWORD="Tr0ub4dor&3"',  # pragma: allowlist secret
        "api_key=sk-live-0123456789abcdef",  # pragma: allowlist secret
        "token: ghp_" + "a" * 36,  # pragma: allowlist secret
    ]
    for leak in leaks:
        assert find_secrets(leak), leak
    fine = [
        "password: \"{{ env_var('SOP_PG_PASSWORD') }}\"",
        'password=dg.EnvVar("SOP_PG_PASSWORD")',
        "token = os.environ['SOP_API_TOKEN']",
        "url: postgresql://${SOP_PG_USER}:${SOP_PG_PASSWORD}@host/db",
        "SOP_PG_PASSWORD=",
        "password: <your password>",
        "pg_password=settings.pg_password,",
        'planted = "x-not-real-x-secret"  # ' + ALLOW,
    ]
    for line in fine:
        assert not find_secrets(line), line
    assert find_secrets('PASSWORD = "Tr0ub4dor&3"', code=True)  # pragma: allowlist secret
    assert not find_secrets("SOP_PG_PASSWORD=planted_value,", code=True)


def test_no_secret_in_any_tracked_file() -> None:
    files = _tracked_files()
    assert len(files) > 50
    problems = []
    for path in files:
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary (images)
        text = data.decode("utf-8", errors="replace")
        for line, kind in find_secrets(text, code=path.suffix == ".py"):
            problems.append(f"{path.relative_to(ROOT)}:{line}: {kind}")
    assert problems == [], "possible secrets in the repository:\n" + "\n".join(problems)


def test_secret_settings_are_only_read_from_the_environment() -> None:
    """The dbt profiles take credentials via env_var(); .env.example has no secret values."""
    profiles = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())

    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        else:
            yield path, node

    for path, value in walk(profiles):
        if re.search(_KEY_WORDS + "|user|host", path, re.IGNORECASE):
            assert isinstance(value, str) and "env_var(" in value, path
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if re.search(_KEY_WORDS, name, re.IGNORECASE) and not name.lstrip().startswith("#"):
            assert value.strip() == "", f".env.example sets {name}: leave secrets empty"
