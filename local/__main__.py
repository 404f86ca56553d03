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
    _fault_arguments(parser)
    args = parser.parse_args(argv)
    _apply_faults(args)
    use_layers()
    from local.stack import StackOptions, run

    options = StackOptions(
        port=args.port, max_instances=args.max_instances, status_delay=args.status_delay, quiet=args.quiet
    )
    return run(options)


def _fault_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fault injection (local/faults.py, docs/reliability.md)")
    group.add_argument("--fault-rate", type=float, default=None, help="share of AWS and Graph calls that fail")
    group.add_argument("--aws-fault-rate", type=float, default=None, help="DynamoDB and SQS only")
    group.add_argument("--graph-fault-rate", type=float, default=None, help="Graph sends only")
    group.add_argument("--aws-fault-level", choices=["attempt", "call"], default=None, help="default: attempt")
    group.add_argument("--fault-seed", type=int, default=None)


def _apply_faults(args: argparse.Namespace) -> None:
    """Faults travel in LOCAL_* variables: the stack configures the simulator, its workers read them."""
    import os

    from local.faults import FaultConfig

    current = FaultConfig.from_environment()
    aws_rate = next((r for r in (args.aws_fault_rate, args.fault_rate) if r is not None), current.aws_rate)
    graph_rate = next((r for r in (args.graph_fault_rate, args.fault_rate) if r is not None), current.graph_rate)
    config = FaultConfig(
        aws_rate=aws_rate,
        aws_level=args.aws_fault_level or current.aws_level,
        aws_services=current.aws_services,
        graph_rate=graph_rate,
        graph_timeout_share=current.graph_timeout_share,
        graph_timeout_seconds=current.graph_timeout_seconds,
        seed=args.fault_seed if args.fault_seed is not None else current.seed,
    )
    if config.active:
        os.environ.update(config.environment())


if __name__ == "__main__":
    sys.exit(main())
