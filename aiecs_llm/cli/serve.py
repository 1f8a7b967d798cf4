"""``aiecs-llm serve``: the container's operations interface (/healthz, /metrics, /usage)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from aiecs_llm.cli.command import Command

# Here rather than in ops_server, so that building the parser does not import the server.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

_HIGHEST_PORT = 65535
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``serve``."""
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="interface to bind (default: %(default)s; 0.0.0.0 exposes unauthenticated endpoints)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="TCP port, 0 for any (default: %(default)s)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request on stderr")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then finish the requests in flight and exit 0."""
    host: str = args.host
    if host not in _LOOPBACK:
        sys.stderr.write(
            f"aiecs-llm: warning: the endpoints have no authentication and {host} is not "
            "loopback; expose it only inside a trusted network\n"
        )
    if args.access_log:
        _log_access_to_stderr()
    asyncio.run(_serve_until_signalled(host=host, port=args.port, access_log=args.access_log))
    sys.stderr.write("aiecs-llm: stopped\n")
    return 0


async def _serve_until_signalled(*, host: str, port: int, access_log: bool) -> None:
    from aiecs_llm.cli import ops_server

    app = ops_server.create_app()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        # Windows has no loop signal handlers; Ctrl-C still ends the server there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(number, stop.set)
    try:
        await ops_server.serve(
            app, host=host, port=port, stop=stop, on_ready=_announce, access_log=access_log
        )
    finally:
        for number in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(number)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= _HIGHEST_PORT:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and {_HIGHEST_PORT}")
    return port


def _announce(url: str) -> None:
    sys.stderr.write(f"aiecs-llm: serving {url}/healthz, /metrics and /usage (Ctrl-C stops)\n")
    sys.stderr.flush()


def _log_access_to_stderr() -> None:
    import logging

    logger = logging.getLogger("aiohttp.access")
    if logger.handlers:  # already set up by an earlier run in this process
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


COMMAND = Command(
    summary="serve /healthz, /metrics and /usage for the container (loopback by default)",
    description=(
        "Serve the operations interface: GET /healthz (key presence; ?live=1 adds a live "
        "check, cached for 30 s), GET /metrics (Prometheus text; needs aiecs-llm[prometheus]) "
        "and GET /usage (today's and this month's spend from the ledger). Binds 127.0.0.1 "
        "unless --host says otherwise; SIGINT or SIGTERM stop it gracefully."
    ),
    examples=("aiecs-llm serve", "aiecs-llm serve --host 0.0.0.0 --port 9100 --access-log"),
    add_arguments=add_arguments,
    run=run,
)
