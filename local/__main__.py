"""`python -m local` (`make run`): the whole service on loopback. See local/stack.py and README "Run locally"."""

from __future__ import annotations

import argparse
import sys

from local.defaults import PORT_ENV, default_port
from local.runtime import use_layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run the service locally: moto, the HTTP API, the SQS pollers and a Graph API simulator.",
    )
    parser.add_argument("--port", type=int, default=default_port(), help=f"HTTP API port (env {PORT_ENV}; 3000)")
    parser.add_argument("--max-instances", type=int, default=4, help="concurrent instances per function")
    parser.add_argument(
        "--status-delay", type=float, default=0.5, help="seconds between simulated sent/delivered/read webhooks"
    )
    parser.add_argument("--quiet", action="store_true", help="hide function logs and the access log")
    args = parser.parse_args(argv)
    use_layers()
    from local.stack import StackOptions, run

    options = StackOptions(
        port=args.port, max_instances=args.max_instances, status_delay=args.status_delay, quiet=args.quiet
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
