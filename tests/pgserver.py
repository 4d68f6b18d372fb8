"""A throwaway PostgreSQL server for the export tests and the bench: Debian's `postgresql` binaries, initdb and
pg_ctl in a temporary folder, listening on a free 127.0.0.1 port, stopped and deleted afterwards.

PostgreSQL refuses to run as root, so as root the server runs as `nobody` (runuser). Host connections need a
password (scram-sha-256), so wrong credentials are refused as on a real server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPERUSER, PASSWORD, DATABASE = "dpsim", "dpsim-test-pw", "dpsim_test"


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<ver>/bin with initdb and pg_ctl, else the ones on PATH, else None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: _version(p.parts[-3]))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl and shutil.which("initdb") else None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x.isdigit())


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    folder: Path

    def url(self, database: str = DATABASE, user: str = SUPERUSER, password: str | None = PASSWORD) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def sql(self, *statements: str, database: str = DATABASE) -> list[tuple[Any, ...]]:
        """Run statements as the superuser with autocommit; returns the last one's rows."""
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.url(database), autocommit=True) as con, con.cursor() as cur:
            rows: list[tuple[object, ...]] = []
            for s in statements:
                cur.execute(s)
                rows = list(cur.fetchall()) if cur.description else []
            return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(bins: Path, *, durable: bool = False) -> Iterator[Server]:
    """Start a fresh server (a database DATABASE owned by SUPERUSER), yield it, stop and delete it.
    Not `durable` (tests): fsync off. The bench keeps PostgreSQL's defaults (each COMMIT waits for its WAL flush)."""
    folder = Path(
        tempfile.mkdtemp(prefix="dpsim-pg-")
    )  # under /tmp: `nobody` cannot enter pytest's root-only dirs
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    data, log, pwfile = folder / "data", folder / "server.log", folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if as_user:
        shutil.chown(pwfile, "nobody")

    def run(*cmd: str) -> None:
        out = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({out.returncode}): {out.stderr.strip()}\n{tail}")

    port = free_port()
    started = False
    try:
        run(
            str(bins / "initdb"),
            "-D", str(data),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=20"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        run(str(bins / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        started = True
        server = Server("127.0.0.1", port, folder)
        server.sql(f"CREATE DATABASE {DATABASE}", database="postgres")
        yield server
    finally:
        if started:
            run(str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
