"""The ``begateway-async`` command: ``demo``, ``run`` (the batch runner) and ``simulate``."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Sequence

import begateway_async

from ._logs import configure_logs

__all__ = ["main"]


def _simulate(args: argparse.Namespace) -> int:
    from begateway_async.testing import (  # noqa: PLC0415 - the simulator extra
        Fault,
        Faults,
        LogNormal,
        Simulator,
        default_processing,
        run_server,
    )

    processing = default_processing(LogNormal.from_percentiles(args.median, args.p99))
    faults = Faults(
        too_early=Fault(rate=args.too_early),
        throttle=Fault(rate=args.throttle, retry_after=args.retry_after),
        html_error=Fault(rate=args.html_error),
        drop=Fault(rate=args.drop),
        truncate=Fault(rate=args.truncate),
    )
    simulator = Simulator(
        processing=processing,
        faults=faults,
        seed=args.seed,
        three_d_secure_delay=args.three_d_secure_delay,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn handles SIGINT itself
        run_server(simulator, host=args.host, port=args.port)
    return 0


def _seconds(text: str) -> float:
    """A number of seconds, 0 or more (checked before anything is sent)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be seconds, 0 or more, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="begateway-async",
        description="Async-mode client of beGateway-platform card gateways, and its simulator.",
    )
    parser.add_argument(
        "--version", action="version", version=f"begateway-async {begateway_async.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    logs = argparse.ArgumentParser(add_help=False)
    logs.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log the library's records at this level to stderr (DEBUG: each request; "
        "INFO: each job's end)",
    )
    logs.add_argument("--log-json", action="store_true", help="log records as JSON lines")

    demo = commands.add_parser(
        "demo",
        parents=[logs],
        help="push a realistic mix of jobs through the client against the simulator",
    )
    demo.add_argument(
        "--otel",
        choices=["console"],
        help="print OpenTelemetry spans (and, at the end, metrics) to stdout "
        "(needs opentelemetry-sdk)",
    )
    demo.add_argument("--flows", type=int, default=2000, help="payment flows to run (default 2000)")
    demo.add_argument("--concurrency", type=int, default=200, help="flows at once (default 200)")
    demo.add_argument("--median", type=float, default=0.5, help="median processing seconds")
    demo.add_argument("--p99", type=float, default=4.0, help="99th percentile processing seconds")
    demo.add_argument("--seed", type=int, default=1)

    run = commands.add_parser(
        "run", parents=[logs], help="submit the requests of a JSONL file, one per line"
    )
    run.add_argument("input", help="the JSON Lines file of requests ('-' for standard input)")
    run.add_argument("--out", required=True, help="where to write one JSON line per finished job")
    run.add_argument("--gateway", help="the gateway's base URL (or BEGATEWAY_URL)")
    run.add_argument("--shop-id", help="the shop id (or BEGATEWAY_SHOP_ID)")
    run.add_argument(
        "--secret-key-file",
        help="a file holding the secret key (or BEGATEWAY_SECRET_KEY); never echoed",
    )
    run.add_argument("--concurrency", type=int, default=100, help="jobs in flight (default 100)")
    run.add_argument("--timeout", type=_seconds, default=None, help="seconds to wait for each job")
    run.add_argument("--force", action="store_true", help="start afresh: overwrite the output")
    run.add_argument(
        "--journal",
        help="the SQLite journal (default: OUT.journal; an existing one resumes its run), or a "
        "postgresql:// URL that several hosts share, each with its own --out",
    )
    run.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="the event loop to run on (trio needs the trio package)",
    )
    run.add_argument(
        "--lease",
        type=float,
        default=30.0,
        help="on a shared journal: seconds after which a silent host's lines are taken over",
    )
    run.add_argument(
        "--merge",
        nargs="+",
        metavar="OUTPUT",
        help="send nothing: write to --out one line per input line, from the hosts' OUTPUTs "
        "and the shared journal",
    )
    run.add_argument(
        "--no-journal", action="store_true", help="keep no journal (a killed run cannot resume)"
    )
    run.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send again the lines the gateway refused (nothing was created for them)",
    )

    simulate = commands.add_parser(
        "simulate", parents=[logs], help="serve the gateway simulator on loopback"
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    simulate.add_argument("--median", type=float, default=1.0, help="median processing seconds")
    simulate.add_argument("--p99", type=float, default=10.0, help="99th percentile seconds")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--too-early", type=float, default=0.0, help="rate of 425 answers")
    simulate.add_argument("--throttle", type=float, default=0.0, help="rate of 429 answers")
    simulate.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of a 429")
    simulate.add_argument("--html-error", type=float, default=0.0, help="rate of HTML 500s")
    simulate.add_argument("--drop", type=float, default=0.0, help="rate of dropped connections")
    simulate.add_argument("--truncate", type=float, default=0.0, help="rate of truncated bodies")
    simulate.add_argument(
        "--3ds-delay",
        dest="three_d_secure_delay",
        type=float,
        default=None,
        help="seconds until a 3-D Secure customer is back (default: on POST /_simulator/3ds/UID)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Usage errors exit 2 (argparse's), Ctrl-C 130, each with one line on
    standard error instead of a traceback.
    """
    args = _parser().parse_args(argv)
    configure_logs(args.log_level, args.log_json)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return _interrupted(args)
    except BaseExceptionGroup as group:  # Trio's run wraps Ctrl-C in a group
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        return _interrupted(args)
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        if name.split(".")[0] == "opentelemetry":
            print(  # noqa: T201
                f"begateway-async {args.command}: --otel needs the OpenTelemetry SDK "
                '(pip install "begateway-async[otel]" opentelemetry-sdk)',
                file=sys.stderr,
            )
            return 1
        if name not in _EXTRAS:
            raise
        extra = _EXTRAS[name]
        print(  # noqa: T201
            f"begateway-async {args.command}: needs the {extra} extra "
            f'(pip install "begateway-async[{extra}]")',
            file=sys.stderr,
        )
        return 1


def _interrupted(args: argparse.Namespace) -> int:
    """Say what an interrupted command leaves behind; exit status 130."""
    after = ""
    if args.command == "run":
        after = (
            "; without a journal, lines under way may have been sent: check them before a rerun"
            if args.no_journal
            else "; what was sent is in the journal: the same command resumes it"
        )
    print(f"begateway-async {args.command}: interrupted{after}", file=sys.stderr)  # noqa: T201
    return 130


#: The extra that brings each optional module the commands import.
_EXTRAS = {
    "uvicorn": "simulator",
    "aiohttp": "aiohttp",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
}


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "demo":
        from ._demo import demo  # noqa: PLC0415

        return demo(args)
    if args.merge is not None:
        from ._merge import run_merge  # noqa: PLC0415

        return run_merge(args)
    from ._batch import run_batch  # noqa: PLC0415

    return run_batch(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
