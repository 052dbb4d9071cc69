"""`postgres_cluster`: a throwaway PostgreSQL cluster on loopback, for tests and benchmarks.

It needs the server's binaries (``initdb``, ``pg_ctl``; Debian's package
``postgresql``). PostgreSQL refuses to run as root: as root, they run as the
``postgres`` user (``runuser``). The cluster trusts local connections and
skips fsync: it is for tests only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["NoServerError", "postgres_cluster"]


class NoServerError(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def _bindir() -> Path:
    for found in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (found / "initdb").exists():
            return found
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    raise NoServerError("no PostgreSQL server here (initdb not found): apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster in a temporary directory; yield its DSN; stop and remove it.

    Raises:
        NoServerError: the server's binaries are not on this machine.
    """
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="bga-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    root.chmod(0o700)
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run(  # noqa: S603 - the server's own binaries, our arguments
            [*as_user, *args], check=True, capture_output=True, timeout=120
        )

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
        "-E", "UTF8")  # fmt: skip
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o", options,
        "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(  # noqa: S603 - as above
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
