"""Fault injection and AWS call metering for the local stack (`python -m local --fault-rate 0.1`).

Nothing under test is edited. Faults reach the code the way real ones would:

- AWS (DynamoDB and SQS by default): botocore event handlers registered on every boto3 session created in
  a function's worker process (installed by local.runtime before the handler is imported).
  `attempt` level (the default) fails single HTTP attempts, so botocore's own retry policy (standard mode,
  3 attempts in this code base) answers them as it would in AWS: throttling errors, 500/503, connections
  closed before the request reached AWS, and requests that AWS applied but whose answer was lost (the
  request really is sent, then a read timeout is raised). `call` level fails whole API calls after
  botocore's retries, so the code under test sees every fault: a near-outage.
- Graph API: the simulator's own fault API, a share of sends answered with 131000 (HTTP 500), 130429 or
  131056, and a share held longer than the responder's read timeout (the simulator accepts those late,
  as Meta may after a client gave up).

Metering: with LOCAL_METER_DIR set, each worker writes what its function did (invocations, durations, AWS
API calls and HTTP attempts per operation, injected faults, log bytes) to a JSON file there; the replay
and the cost model (docs/cost.md) read those files.

Configuration travels in LOCAL_* environment variables, which the stack passes on to its workers.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from local import capacity

AWS_RATE_ENV = "LOCAL_AWS_FAULT_RATE"
AWS_LEVEL_ENV = "LOCAL_AWS_FAULT_LEVEL"
AWS_SERVICES_ENV = "LOCAL_AWS_FAULT_SERVICES"
GRAPH_RATE_ENV = "LOCAL_GRAPH_FAULT_RATE"
GRAPH_TIMEOUT_SHARE_ENV = "LOCAL_GRAPH_TIMEOUT_SHARE"
GRAPH_TIMEOUT_SECONDS_ENV = "LOCAL_GRAPH_TIMEOUT_SECONDS"
SEED_ENV = "LOCAL_FAULT_SEED"
METER_DIR_ENV = "LOCAL_METER_DIR"
# The response header by which a webhook answer says that this invocation met injected faults (local only).
FAULT_HEADER = "x-local-injected-faults"

ATTEMPT = "attempt"
CALL = "call"
# Graph codes of the injected send failures: Meta's unknown error (HTTP 500), throughput and pair limits.
GRAPH_FAULT_CODES = (131000, 130429, 131056)
# One more second than the responder's Graph read timeout (ResponderGraphReadTimeoutSeconds, 6).
DEFAULT_GRAPH_TIMEOUT_SECONDS = 7.0


@dataclass(frozen=True)
class FaultConfig:
    aws_rate: float = 0.0
    aws_level: str = ATTEMPT
    aws_services: tuple[str, ...] = ("dynamodb", "sqs")
    graph_rate: float = 0.0
    graph_timeout_share: float = 0.25
    graph_timeout_seconds: float = DEFAULT_GRAPH_TIMEOUT_SECONDS
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("aws_rate", "graph_rate", "graph_timeout_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.aws_level not in (ATTEMPT, CALL):
            raise ValueError(f"aws_level must be {ATTEMPT!r} or {CALL!r}")

    @property
    def active(self) -> bool:
        return self.aws_rate > 0 or self.graph_rate > 0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> FaultConfig:
        env = os.environ if environ is None else environ
        services = env.get(AWS_SERVICES_ENV)
        seed = env.get(SEED_ENV)
        return cls(
            aws_rate=float(env.get(AWS_RATE_ENV) or 0.0),
            aws_level=env.get(AWS_LEVEL_ENV) or ATTEMPT,
            aws_services=tuple(s.strip() for s in services.split(",") if s.strip())
            if services
            else ("dynamodb", "sqs"),
            graph_rate=float(env.get(GRAPH_RATE_ENV) or 0.0),
            graph_timeout_share=float(env.get(GRAPH_TIMEOUT_SHARE_ENV) or 0.25),
            graph_timeout_seconds=float(env.get(GRAPH_TIMEOUT_SECONDS_ENV) or DEFAULT_GRAPH_TIMEOUT_SECONDS),
            seed=int(seed) if seed else None,
        )

    def environment(self) -> dict[str, str]:
        """The LOCAL_* variables that carry this configuration to the stack's workers."""
        env = {
            AWS_RATE_ENV: repr(self.aws_rate),
            AWS_LEVEL_ENV: self.aws_level,
            AWS_SERVICES_ENV: ",".join(self.aws_services),
            GRAPH_RATE_ENV: repr(self.graph_rate),
            GRAPH_TIMEOUT_SHARE_ENV: repr(self.graph_timeout_share),
            GRAPH_TIMEOUT_SECONDS_ENV: repr(self.graph_timeout_seconds),
        }
        if self.seed is not None:
            env[SEED_ENV] = str(self.seed)
        return env

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def configure_simulator(simulator: Any, config: FaultConfig) -> None:
    """Graph faults through the simulator's own API: error codes and late (timed-out) answers on sends."""
    if config.graph_rate <= 0:
        return
    timeouts = config.graph_rate * config.graph_timeout_share
    errors = config.graph_rate - timeouts
    if errors > 0:
        simulator.fail_ratio(errors, codes=GRAPH_FAULT_CODES, seed=config.seed)
    if timeouts > 0:
        simulator.delay_ratio(
            timeouts, config.graph_timeout_seconds, seed=None if config.seed is None else config.seed + 1
        )


# --- the worker side: botocore event handlers ------------------------------------------------------------


class _RawBody:
    """What botocore reads an HTTP response body from (AWSResponse.raw)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


# (kind, HTTP status, error code) for each service; kinds without a status are raised as network errors.
_THROTTLE = "throttle"
_SERVER = "server_error"
_DROPPED = "connection_closed"
_LOST = "response_lost"
_ERRORS: dict[str, dict[str, tuple[int, str]]] = {
    "dynamodb": {
        _THROTTLE: (400, "ProvisionedThroughputExceededException"),
        _SERVER: (500, "InternalServerError"),
    },
    "sqs": {
        _THROTTLE: (400, "RequestThrottled"),
        _SERVER: (503, "ServiceUnavailable"),
    },
}
_GENERIC_ERRORS = {_THROTTLE: (400, "ThrottlingException"), _SERVER: (503, "ServiceUnavailable")}
_KINDS = (_THROTTLE, _THROTTLE, _SERVER, _DROPPED, _LOST)


def _error_document(service: str, code: str) -> bytes:
    prefix = "com.amazonaws.dynamodb.v20120810" if service == "dynamodb" else f"com.amazonaws.{service}"
    return json.dumps({"__type": f"{prefix}#{code}", "message": "injected by local/faults.py"}).encode()


@dataclass
class Meter:
    """What one worker process did, written to LOCAL_METER_DIR as JSON."""

    function: str
    pid: int = field(default_factory=os.getpid)
    invocations: int = 0
    errors: int = 0
    records: int = 0
    durations_ms: list[float] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    log_bytes: int = 0
    # DynamoDB capacity units computed from item sizes (local/capacity.py), when LOCAL_METER_CAPACITY=1.
    capacity: Counter[str] = field(default_factory=Counter)
    # Faults injected during the invocation running now (reset by the handler wrapper).
    current_faults: int = 0

    def document(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "pid": self.pid,
            "invocations": self.invocations,
            "errors": self.errors,
            "records": self.records,
            "durations_ms": list(self.durations_ms),
            "calls": dict(self.calls),
            "attempts": dict(self.attempts),
            "faults": dict(self.faults),
            "log_bytes": self.log_bytes,
            "capacity": dict(self.capacity),
        }


class _CountingStream:
    """stdout as the function's logger sees it, counting what would go to CloudWatch Logs."""

    def __init__(self, stream: Any, meter: Meter) -> None:
        self._stream = stream
        self._meter = meter

    def write(self, text: str) -> int:
        self._meter.log_bytes += len(text.encode("utf-8", errors="replace"))
        return int(self._stream.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class WorkerFaults:
    """botocore event handlers for one worker process: metering always, faults when configured."""

    def __init__(self, config: FaultConfig, meter: Meter) -> None:
        self.config = config
        self.meter = meter
        seed = None if config.seed is None else config.seed * 1_000_003 + os.getpid()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._http: Any = None
        self._capacity: Any = None
        if os.environ.get(capacity.ENABLE_ENV) == "1":
            self._capacity = capacity.CapacityMeter(meter.capacity)

    def _faulted(self, service: str) -> bool:
        if self.config.aws_rate <= 0 or service not in self.config.aws_services:
            return False
        with self._lock:
            return self._random.random() < self.config.aws_rate

    def _kind(self) -> str:
        with self._lock:
            return self._random.choice(_KINDS)

    def _count_fault(self, name: str, kind: str) -> None:
        self.meter.faults[f"{name}.{kind}"] += 1
        self.meter.current_faults += 1

    def register(self, session: Any) -> None:
        """On a botocore Session: every client it creates afterwards carries these handlers."""
        session.register("before-call", self.before_call)
        session.register("after-call", self.after_call)
        session.register("before-send", self.before_send)
        if self._capacity is not None:
            self._capacity.register(session)

    @staticmethod
    def _name(event_name: str) -> tuple[str, str]:
        # before-call.dynamodb.TransactWriteItems -> ("dynamodb", "dynamodb.TransactWriteItems")
        parts = event_name.split(".")
        service = parts[1] if len(parts) > 1 else "unknown"
        return service, ".".join(parts[1:3])

    def before_call(self, event_name: str, context: Any = None, **_: Any) -> Any:
        if capacity.is_meter_call():
            return None
        service, name = self._name(event_name)
        self.meter.calls[name] += 1
        if self.config.aws_level != CALL or not self._faulted(service):
            return None
        kind = self._kind()
        if kind == _LOST and isinstance(context, dict):
            # Decided now, raised after the call went through (after_call), so AWS applies it.
            context["local_fault_lost"] = True
            return None
        self._count_fault(name, kind)
        return self._call_failure(service, name, kind)

    def _call_failure(self, service: str, name: str, kind: str) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ConnectionClosedError

        if kind in (_DROPPED, _LOST):
            raise ConnectionClosedError(endpoint_url=f"injected://{name}")
        status, code = _ERRORS.get(service, _GENERIC_ERRORS)[kind]
        response = AWSResponse(f"injected://{name}", status, {}, _RawBody(b""))
        parsed = {
            "Error": {"Code": code, "Message": "injected by local/faults.py"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
        }
        return response, parsed

    def after_call(self, event_name: str, context: Any = None, **_: Any) -> None:
        if capacity.is_meter_call():
            return
        if isinstance(context, dict) and context.pop("local_fault_lost", False):
            from botocore.exceptions import ReadTimeoutError

            _service, name = self._name(event_name)
            self._count_fault(name, _LOST)
            raise ReadTimeoutError(endpoint_url=f"injected://{name}")

    def before_send(self, event_name: str, request: Any = None, **_: Any) -> Any:
        if capacity.is_meter_call():
            return None
        service, name = self._name(event_name)
        self.meter.attempts[name] += 1
        if self.config.aws_level != ATTEMPT or not self._faulted(service):
            return None
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

        kind = self._kind()
        self._count_fault(name, kind)
        url = getattr(request, "url", f"injected://{name}")
        if kind == _DROPPED:
            raise ConnectionClosedError(endpoint_url=url)
        if kind == _LOST:
            self._send_for_real(request)
            raise ReadTimeoutError(endpoint_url=url)
        status, code = _ERRORS.get(service, _GENERIC_ERRORS)[kind]
        return AWSResponse(
            url, status, {"content-type": "application/x-amz-json-1.0"}, _RawBody(_error_document(service, code))
        )

    def _send_for_real(self, request: Any) -> None:
        """AWS receives and applies the request; only its answer goes missing."""
        from botocore.httpsession import URLLib3Session

        with self._lock:
            if self._http is None:
                self._http = URLLib3Session()
        self._http.send(request)


_installed: WorkerFaults | None = None


def install_worker(function: str, environ: dict[str, str] | None = None) -> WorkerFaults | None:
    """In a worker process, before the handler is imported: hooks on every botocore session from now on.

    Does nothing unless faults or metering are configured, so a plain `make run` runs untouched code paths.
    """
    global _installed
    env = os.environ if environ is None else environ
    config = FaultConfig.from_environment(dict(env))
    meter_dir = env.get(METER_DIR_ENV)
    if not config.active and not meter_dir:
        return None
    import botocore.session

    meter = Meter(function=function)
    faults = WorkerFaults(config, meter)
    original_init = botocore.session.Session.__init__

    def init_with_hooks(session: Any, *args: Any, **kwargs: Any) -> None:
        original_init(session, *args, **kwargs)
        faults.register(session)

    botocore.session.Session.__init__ = init_with_hooks
    sys.stdout = _CountingStream(sys.stdout, meter)
    if meter_dir:
        _start_meter_writer(Path(meter_dir), meter)
    _installed = faults
    return faults


def _start_meter_writer(directory: Path, meter: Meter) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{meter.function}-{meter.pid}.json"

    def write() -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(meter.document()), encoding="utf-8")
        temporary.replace(path)

    def every_second() -> None:
        while True:
            time.sleep(1.0)
            try:
                write()
            except Exception:  # a meter must never take the function down; the next second tries again
                continue

    threading.Thread(target=every_second, name="local-meter", daemon=True).start()
    atexit.register(write)


def wrap_handler(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Time each invocation and, for HTTP answers, say whether injected faults met it (FAULT_HEADER)."""
    faults = _installed
    if faults is None:
        return handler
    meter = faults.meter

    def metered(event: Any, context: Any) -> Any:
        meter.current_faults = 0
        if isinstance(event, dict) and isinstance(event.get("Records"), list):
            meter.records += len(event["Records"])
        started = time.perf_counter()
        try:
            result = handler(event, context)
        except Exception:
            meter.errors += 1
            raise
        finally:
            meter.invocations += 1
            meter.durations_ms.append(round((time.perf_counter() - started) * 1000, 3))
        if meter.current_faults and isinstance(result, dict) and "statusCode" in result:
            headers = dict(result.get("headers") or {})
            headers[FAULT_HEADER] = str(meter.current_faults)
            result = {**result, "headers": headers}
        return result

    return metered


def read_meters(directory: Path) -> list[dict[str, Any]]:
    """Every worker's meter file in `directory` (the replay and bench/cost_profile.py aggregate them)."""
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found
