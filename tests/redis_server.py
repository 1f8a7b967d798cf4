"""A real ``redis-server`` on a free loopback port, for the Redis tests.

Where the binary is missing the tests skip with the reason, except when
``AIECS_LLM_REQUIRE_REDIS=1`` (set by ``.ci/run``): then they fail, so CI can never pass by
skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

REQUIRE_ENV = "AIECS_LLM_REQUIRE_REDIS"


def redis_binary() -> str:
    """The path of ``redis-server``; skips (or fails, in CI) when it is not installed."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 forbids skipping")
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``kill()`` and ``start()`` again keep port and data dir.

    ``durable`` turns on the append-only file, as a deployment that keeps budgets in Redis
    should: a killed server then comes back with its books (every write reaches the file
    before its reply is sent; ``everysec`` only spaces the fsyncs, which a killed process does
    not need).
    """

    def __init__(self, *, password: str | None = None, durable: bool = False) -> None:
        self.binary = redis_binary()
        self.port = free_port()
        self.password = password
        self.durable = durable
        self._dir = tempfile.TemporaryDirectory(prefix="aiecs-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        command = [
            self.binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._dir.name,
            "--save", "", "--daemonize", "no", "--logfile", "",
            "--appendonly", "yes" if self.durable else "no", "--appendfsync", "everysec",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies as a crashed host's would, without a goodbye."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
            self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                if self.password:
                    conn.sendall(f"AUTH {self.password}\r\n".encode())
                    conn.recv(64)
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()
        self._dir.cleanup()
