"""A throwaway PostgreSQL server for the tests: its own cluster in a temp folder, on a free port.

The server binaries come from Debian's ``postgresql`` package (``scripts/install_postgres.sh``
installs it; ``make test`` runs that first). The cluster listens on 127.0.0.1 and on a unix
socket in its own folder only, with password (scram) login for the test user, and is removed
when the tests end. Run as root, the server runs as the ``postgres`` user (PostgreSQL refuses
to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "run `bash scripts/install_postgres.sh` (Debian/Ubuntu: apt-get install postgresql), or "
    "`make test`, which runs it first"
)


class PostgresNotAvailable(RuntimeError):  # noqa: N818 - a skip reason, not an error; the tests catch it
    """The server binaries are missing or the server did not start; the message says why."""


def find_bindir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest Debian version first).

    Raises:
        PostgresNotAvailable: no PostgreSQL server binaries on this machine.
    """
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise PostgresNotAvailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in /usr/lib/postgresql/*/bin "
        f"or on PATH: {INSTALL_HINT}."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running throwaway cluster with one database owned by a password-protected user."""

    bindir: Path
    root: Path
    port: int
    user: str = "sop_test"
    dbname: str = "sop_test"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    _run_as: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        """The SOP_PG_* settings that reach this server over TCP with the test user's password."""
        return {
            "SOP_PG_HOST": "127.0.0.1",
            "SOP_PG_PORT": str(self.port),
            "SOP_PG_USER": self.user,
            "SOP_PG_DBNAME": self.dbname,
            "SOP_PG_PASSWORD": self.password,
        }

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._run_as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresNotAvailable(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}\n{tail}"
            )

    @classmethod
    def start(cls) -> PostgresServer:
        """Create a cluster (initdb) in a new temp folder, start it and create the test user and database.

        Raises:
            PostgresNotAvailable: binaries missing, or initdb/pg_ctl failed (with their output).
        """
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="sop-pg-"))
        run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                raise PostgresNotAvailable(
                    "running as root, and there is no `postgres` user to run the server as "
                    f"(PostgreSQL refuses root): {INSTALL_HINT}, which creates it."
                ) from None
            os.chown(root, owner.pw_uid, owner.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        server = cls(bindir=bindir, root=root, port=_free_port(), _run_as=run_as)
        try:
            server._init_and_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _init_and_start(self) -> None:
        pwfile = self.root / "superuser.pw"
        pwfile.write_text(secrets.token_urlsafe(16) + "\n")
        if self._run_as:
            owner = pwd.getpwnam("postgres")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        # trust on the socket (the socket folder is the cluster's own, mode 0700); scram on TCP
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        )
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                # a throwaway cluster: no need to survive a power cut
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        import psycopg2

        admin = psycopg2.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres"
        )
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(f"create role {self.user} login password %s", [self.password])
                cur.execute(f"create database {self.dbname} owner {self.user}")
        finally:
            admin.close()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self._run_as,
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
