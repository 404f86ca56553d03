"""The whole service on loopback: moto's server, the HTTP API, the SQS event sources and a Graph API simulator.

Everything is read from template.yaml: tables, queues and the secret (local.template.create_resources),
functions, their environment and layers (local.runtime), routes (local.http_api), SQS event sources
(local.poller). A function added to the template runs here the moment it is there.

Start order: moto, resources, one warm instance per function, the Graph simulator, the HTTP API, the SQS
pollers; stop order is the reverse, and every process the stack started is waited for.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    LOCAL_ACCESS_TOKEN,
    LOCAL_ACCOUNT_ID,
    LOCAL_REGION,
    PORT_ENV,
    app_secret,
    default_port,
    verify_token,
)
from local.http_api import HttpResponse, LocalHttpApi, Route, routes
from local.poller import SqsPoller, SqsSource, sqs_sources
from local.runtime import FunctionPool, FunctionSpec, Invocation, function_specs, print_log, worker_environment
from local.stream_poller import StreamPoller, StreamSource, stream_sources
from local.template import ROOT, TEMPLATE_PATH, CreatedResources, create_resources, load_template

DEMO_LEAD = "972525551234"
# The Try list's second lead (the first is events/' DEMO_LEAD).
SECOND_LEAD = "972525550002"
_MOTO_READY = re.compile(r"Running on (http://[\d.]+:\d+)")


@dataclass
class StackOptions:
    host: str = DEFAULT_HOST
    port: int = field(default_factory=default_port)
    template_path: Path = TEMPLATE_PATH
    max_instances: int = 4
    # Seconds between the simulator's sent, delivered and read webhooks: slow enough to watch the ticks.
    status_delay: float = 0.5
    sqs_wait_seconds: int = 2
    quiet: bool = False


def _die_with_parent() -> None:
    """Linux: moto's server gets SIGTERM if the stack is killed without a chance to stop it."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class MotoServer:
    """moto's server (the venv's `moto_server` entry point) as a child process on a free loopback port."""

    def __init__(self, host: str = DEFAULT_HOST, verbose: bool = False) -> None:
        self._host = host
        self._verbose = verbose
        self.process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    @staticmethod
    def executable() -> str:
        beside_python = Path(sys.executable).parent / "moto_server"
        if beside_python.exists():
            return str(beside_python)
        raise FileNotFoundError(f"moto_server not found next to {sys.executable}; run `make venv`")

    def start(self, timeout: float = 30.0) -> str:
        self.executable()  # moto[server] is installed
        # moto's server with DynamoDB isolation and cheap transaction rollback (local/moto_fidelity.py).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.moto_fidelity", "-H", self._host, "-p", "0"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        assert self.process.stdout is not None
        found = threading.Event()

        def read_output(stream: Any) -> None:
            for line in stream:
                if not self.endpoint:
                    match = _MOTO_READY.search(line)
                    if match:
                        self.endpoint = match.group(1)
                        found.set()
                elif self._verbose:
                    sys.stderr.write(f"moto | {line}")
            found.set()

        threading.Thread(target=read_output, args=(self.process.stdout,), name="moto-output", daemon=True).start()
        if not found.wait(timeout) or not self.endpoint:
            self.stop()
            raise RuntimeError("moto_server did not start (is port binding allowed on loopback?)")
        return self.endpoint

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _local_aws_environment(endpoint: str) -> None:
    """This process talks to moto only: no profile, no real credentials, no service-specific endpoints."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_DEFAULT_REGION=LOCAL_REGION,
        AWS_REGION=LOCAL_REGION,
    )


def _real_graph() -> bool:
    """A real access token in the shell means: talk to the real Graph API, no simulator."""
    return bool(os.environ.get("WHATSAPP_ACCESS_TOKEN"))


def _schedule_event(logical_id: str, name: str) -> dict[str, Any]:
    """What EventBridge hands a function on a schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": LOCAL_REGION,
        "resources": [f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:rule/local-{logical_id}{name}"],
        "detail": {},
    }


def _simulated_numbers() -> dict[str, str]:
    """The numbers the simulated WABA owns: the two demo numbers, and any WHATSAPP_PHONE_NUMBER_IDS given."""
    from local.meta_payloads import DEMO_NUMBERS

    numbers = dict(DEMO_NUMBERS)
    for index, number_id in enumerate(os.environ.get("WHATSAPP_PHONE_NUMBER_IDS", "").split(",")):
        if number_id.strip().isdigit():
            numbers.setdefault(number_id.strip(), f"1555078{3890 + index:04d}")
    return numbers


def _json_response(document: Any, status: int = 200) -> HttpResponse:
    body = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    return HttpResponse(status, [("Content-Type", "application/json; charset=utf-8")], body)


class PublishedEvents:
    """Every event put on the template's event buses, through a catch-all rule to a queue of the stack's own
    (a consumer as a CRM would attach one); kept in memory for GET /_local/events."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def observe(cls, session: Any, template: dict[str, Any], created: CreatedResources) -> PublishedEvents | None:
        from local.template import resources_of_type

        buses = [created.refs[logical_id] for logical_id in resources_of_type(template, "AWS::Events::EventBus")]
        if not buses:
            return None
        sqs, events = session.client("sqs"), session.client("events")
        url = sqs.create_queue(QueueName=f"{buses[0]}-local-observer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for bus in buses:
            name = f"{bus}-local-observer"
            events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["whatsapp-crm"]}))
            events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "local-observer", "Arn": arn}])
        return cls(sqs, str(url))

    def read(self) -> list[dict[str, Any]]:
        with self._lock:
            while True:
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    return list(self._events)
                self._events.extend(json.loads(message["Body"]) for message in messages)
                self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.template = load_template(self.options.template_path)
        self.moto = MotoServer(self.options.host, verbose=not self.options.quiet and bool(os.environ.get("MOTO_LOG")))
        self.created = CreatedResources()
        self.specs: dict[str, FunctionSpec] = {}
        self.pools: dict[str, FunctionPool] = {}
        self.routes: list[Route] = routes(self.template)
        self.sources: list[SqsSource] = []
        self.pollers: list[SqsPoller] = []
        self.stream_sources: list[StreamSource] = []
        self.stream_pollers: list[StreamPoller] = []
        self.events: PublishedEvents | None = None
        self.simulator: Any = None
        self.api: LocalHttpApi | None = None
        self.warm_errors: dict[str, dict[str, Any]] = {}
        self._print_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        # Bind the API's port first: a busy port should fail before anything else starts.
        self.api = LocalHttpApi(
            self.routes, self.invoke, host=self.options.host, port=self.options.port, log=self._log_access
        )
        try:
            self._start_backends()
        except BaseException:
            self.stop()
            raise
        self.api.start()
        for poller in self.pollers:
            poller.start()
        for stream_poller in self.stream_pollers:
            stream_poller.start()
        self._run_schedules_once()

    def _run_schedules_once(self) -> None:
        """Each `Schedule` event of the template once, at start, as its first run after a deploy would be
        (the template cache is synced, so template sends are checked as in AWS). Schedules do not repeat
        locally: `GET /templates?refresh=true` syncs again."""
        for logical_id, spec in self.specs.items():
            for name, event in spec.events.items():
                if event.get("Type") not in ("Schedule", "ScheduleV2"):
                    continue
                outcome = self.invoke(logical_id, _schedule_event(logical_id, name))
                self._log(f"{logical_id}.{name}: ran once at start ({outcome.error or outcome.payload})")

    def _start_backends(self) -> None:
        assert self.api is not None
        endpoint = self.moto.start()
        _local_aws_environment(endpoint)
        import boto3

        session = boto3.session.Session(region_name=LOCAL_REGION)
        secret = {
            "access_token": os.environ.get("WHATSAPP_ACCESS_TOKEN") or LOCAL_ACCESS_TOKEN,
            "app_secret": app_secret(),
            "verify_token": verify_token(),
        }
        self.created = create_resources(session, f"local-{uuid.uuid4().hex[:6]}", self.template, secret)
        if not _real_graph():
            from local.graph_simulator import GraphSimulator
            from local.template_catalogue import default_catalogue

            # A WABA with templates (approved, in review, paused; positional, named, media header): GET
            # /templates and the inbox's picker list them, and template sends are checked as Meta checks them.
            self.simulator = GraphSimulator(
                access_token=LOCAL_ACCESS_TOKEN,
                host=self.options.host,
                webhook_url=f"{self.api.url}/webhook" if self._has_route("POST", "/webhook") else None,
                app_secret=app_secret() if self._has_route("POST", "/webhook") else None,
                status_delay=self.options.status_delay,
                templates=default_catalogue(),
                phone_numbers=_simulated_numbers(),
            ).start()
            from local.faults import FaultConfig, configure_simulator

            configure_simulator(self.simulator, FaultConfig.from_environment())
        self.specs = function_specs(self.template, self.created, template_path=self.options.template_path)
        for logical_id, spec in self.specs.items():
            env = worker_environment(spec, endpoint)
            env.update(self._graph_overrides(env))
            log = (lambda _id, _line: None) if self.options.quiet else self._log_function
            self.pools[logical_id] = FunctionPool(spec, env, max_instances=self.options.max_instances, log=log)
        with ThreadPoolExecutor(max_workers=max(1, len(self.pools))) as executor:
            outcomes = dict(zip(self.pools, executor.map(lambda pool: pool.warm(), self.pools.values()), strict=True))
        self.warm_errors = {logical_id: error for logical_id, error in outcomes.items() if error is not None}
        sqs = session.client("sqs")
        self.sources = sqs_sources(self.template, self.created)
        self.pollers = [
            SqsPoller(source, sqs, self.invoke, wait_seconds=self.options.sqs_wait_seconds, log=self._log)
            for source in self.sources
            if source.enabled and source.function in self.pools
        ]
        for source in self.sources:
            if source.has_filter:
                self._log(f"{source.function}.{source.event_name}: FilterCriteria is not applied locally")
        # The table's stream, fed to its functions as Lambda would (EventsFunction: CRM events).
        self.stream_sources = stream_sources(self.template, self.created)
        streams = session.client("dynamodbstreams")
        self.stream_pollers = [
            StreamPoller(source, streams, sqs, self.invoke, log=self._log)
            for source in self.stream_sources
            if source.function in self.pools
        ]
        self.events = PublishedEvents.observe(session, self.template, self.created)
        self._add_local_endpoints()

    def _graph_overrides(self, env: dict[str, str]) -> dict[str, str]:
        """Point the functions that talk to Graph at the simulator, with the number it plays."""
        from local.meta_payloads import DEMO_PHONE_NUMBER_ID, DEMO_SECOND_PHONE_NUMBER_ID
        from local.template_catalogue import DEFAULT_WABA_ID

        overrides: dict[str, str] = {}
        if self.simulator is not None and "GRAPH_API_BASE_URL" in env:
            overrides["GRAPH_API_BASE_URL"] = self.simulator.base_url
        if "WHATSAPP_PHONE_NUMBER_IDS" in env:
            # The simulator plays the demo number; against the real Graph API only a real number id will do.
            # It owns a second one too, so a business with two numbers can be tried (the webhook drops others).
            fallback = f"{DEMO_PHONE_NUMBER_ID},{DEMO_SECOND_PHONE_NUMBER_ID}" if self.simulator is not None else ""
            overrides["WHATSAPP_PHONE_NUMBER_IDS"] = (
                os.environ.get("WHATSAPP_PHONE_NUMBER_IDS") or env["WHATSAPP_PHONE_NUMBER_IDS"] or fallback
            )
        if "WHATSAPP_BUSINESS_ACCOUNT_ID" in env:
            # Likewise the simulator's template catalogue belongs to the demo WABA.
            waba_fallback = DEFAULT_WABA_ID if self.simulator is not None else ""
            overrides["WHATSAPP_BUSINESS_ACCOUNT_ID"] = (
                os.environ.get("WHATSAPP_BUSINESS_ACCOUNT_ID") or env["WHATSAPP_BUSINESS_ACCOUNT_ID"] or waba_fallback
            )
        if _real_graph() and os.environ.get("GRAPH_API_BASE_URL") and "GRAPH_API_BASE_URL" in env:
            overrides["GRAPH_API_BASE_URL"] = os.environ["GRAPH_API_BASE_URL"]
        return overrides

    def stop(self) -> None:
        """Reverse order; safe to call twice and after a failed start."""
        for poller in self.pollers:
            poller.stop(timeout=0)
        for stream_poller in self.stream_pollers:
            stream_poller.stop(timeout=0)
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        for poller in self.pollers:
            poller.stop()
        self.pollers = []
        for stream_poller in self.stream_pollers:
            stream_poller.stop()
        self.stream_pollers = []
        if self.api is not None:
            self.api.stop()
            self.api = None
        for pool in self.pools.values():
            pool.stop()
        self.pools = {}
        self.moto.stop()

    def pids(self) -> list[int]:
        """Every child process the stack runs now (tests check none survives stop())."""
        children = [pid for pool in self.pools.values() for pid in pool.pids()]
        if self.moto.process is not None:
            children.append(self.moto.process.pid)
        return children

    # -- invocation ---------------------------------------------------------------------------------------

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Invocation:
        pool = self.pools.get(logical_id)
        if pool is None:
            return Invocation(error={"errorType": "ResourceNotFoundException", "errorMessage": logical_id})
        outcome = pool.invoke(event)
        if outcome.error is not None:
            self._log(f"{logical_id} failed: {outcome.error.get('errorType')}: {outcome.error.get('errorMessage')}")
        return outcome

    def _has_route(self, method: str, path: str) -> bool:
        return any(route.method in (method, "ANY") and route.path == path for route in self.routes)

    # -- stack-only endpoints (the demo and the tests read the simulator through them) ---------------------

    def _add_local_endpoints(self) -> None:
        assert self.api is not None
        self.api.add_local_endpoint("GET", "/_local/info", lambda _query: _json_response(self.info()))
        self.api.add_local_endpoint("GET", "/_local/graph/requests", lambda _query: self._graph_requests())
        self.api.add_local_endpoint("GET", "/_local/graph/deliveries", lambda _query: self._graph_deliveries())
        self.api.add_local_endpoint("POST", "/_local/graph/media", self._graph_add_media)
        self.api.add_local_endpoint("GET", "/_local/events", self._published_events)

    def info(self) -> dict[str, Any]:
        return {
            "api": self.api.url if self.api else None,
            "pid": os.getpid(),
            "faults": _fault_settings(),
            "aws_endpoint": self.moto.endpoint,
            "graph": self.simulator.base_url if self.simulator else "real Graph API",
            "simulator": self.simulator is not None,
            # The numbers the simulated WABA owns (phone_number_id -> display number); sends from others fail.
            "simulated_numbers": self.simulator.phone_numbers if self.simulator is not None else None,
            "functions": sorted(self.pools),
            "routes": [
                {"route": route.route_key, "function": route.function, "authorizer": route.authorizer}
                for route in self.routes
            ],
            "sqs": [
                {"queue_arn": source.queue_arn, "function": source.function, "batch_size": source.batch_size}
                for source in self.sources
            ],
            "streams": [
                {"stream_arn": source.stream_arn, "function": source.function, "batch_size": source.batch_size}
                for source in self.stream_sources
            ],
            "resources": self.created.refs,
        }

    def _published_events(self, query: str) -> HttpResponse:
        """What reached the CRM event bus so far, oldest first; `?wa_id=` and `?detail_type=` narrow it."""
        from urllib.parse import parse_qs

        if self.events is None:
            return _json_response({"error": {"code": "no_event_bus", "message": "template.yaml has none"}}, 404)
        asked = {name: values[0] for name, values in parse_qs(query).items() if values}
        events = [
            event
            for event in self.events.read()
            if all(
                str((event.get("detail") or {}).get(name) if name != "detail_type" else event.get("detail-type"))
                == value
                for name, value in asked.items()
                if name in ("wa_id", "phone_number_id", "detail_type")
            )
        ]
        return _json_response({"events": events})

    def _graph_requests(self) -> HttpResponse:
        if self.simulator is None:
            return _json_response({"error": {"code": "no_simulator", "message": "the real Graph API is used"}}, 404)
        records = [
            {
                "method": record.method,
                "path": record.path,
                "phone_number_id": record.phone_number_id,
                "body": record.body,
                "status": record.status,
                "response": record.response if not isinstance(record.response, bytes) else None,
            }
            for record in self.simulator.recorded()
        ]
        return _json_response({"requests": records})

    def _graph_add_media(self, query: str) -> HttpResponse:
        """`?sample=photo|brochure[&faults=wrong_sha256,...]`: a file Meta holds as if a lead had sent it."""
        from urllib.parse import parse_qs

        from local.graph_simulator import MEDIA_FAULTS
        from local.media_samples import SAMPLES, sha256_hex

        if self.simulator is None:
            return _json_response({"error": {"code": "no_simulator", "message": "the real Graph API is used"}}, 404)
        asked = parse_qs(query)
        sample = (asked.get("sample") or ["photo"])[0]
        faults = {fault for value in asked.get("faults", []) for fault in value.split(",") if fault}
        if sample not in SAMPLES or not faults <= MEDIA_FAULTS:
            message = f"sample is one of {sorted(SAMPLES)}; faults of {sorted(MEDIA_FAULTS)}"
            return _json_response({"error": {"code": "validation_error", "message": message}}, 400)
        content, mime_type = SAMPLES[sample]
        from local.meta_payloads import DEMO_PHONE_NUMBER_ID

        media_id = self.simulator.add_media(content, mime_type, phone_number_id=DEMO_PHONE_NUMBER_ID, faults=faults)
        return _json_response(
            {"media_id": media_id, "mime_type": mime_type, "size": len(content), "sha256": sha256_hex(content)}
        )

    def _graph_deliveries(self) -> HttpResponse:
        if self.simulator is None:
            return _json_response({"error": {"code": "no_simulator", "message": "the real Graph API is used"}}, 404)
        deliveries = [
            {"wamid": d.wamid, "status": d.status, "http_status": d.http_status, "error": d.error}
            for d in self.simulator.deliveries()
        ]
        return _json_response({"deliveries": deliveries})

    # -- output ---------------------------------------------------------------------------------------------

    def _log(self, line: str) -> None:
        with self._print_lock:
            sys.stderr.write(f"local | {line}\n")
            sys.stderr.flush()

    def _log_access(self, line: str) -> None:
        if not self.options.quiet:
            self._log(line)

    def _log_function(self, logical_id: str, line: str) -> None:
        with self._print_lock:
            print_log(logical_id, line)

    def banner(self) -> str:
        assert self.api is not None
        url = self.api.url
        python = _relative(Path(sys.executable))
        lines = [
            "",
            "Local stack ready: no AWS account, no Docker. Ctrl-C stops everything.",
            "",
            f"  HTTP API       {url}",
        ]
        if self._has_route("GET", "/inbox"):
            lines.insert(3, f"  Agent inbox    {url}/inbox   (open it in a browser)")
        width = max((len(route.route_key) for route in self.routes), default=10)
        function_width = max((len(route.function) for route in self.routes), default=10)
        for route in sorted(self.routes, key=lambda route: (route.path, route.method)):
            access = "public" if route.is_open else f"{route.authorizer} in AWS, OPEN here"
            lines.append(f"    {route.route_key:<{width}}  {route.function:<{function_width}}  ({access})")
        for source in self.sources:
            queue = source.queue_arn.rsplit(":", 1)[-1]
            failures = ", ReportBatchItemFailures" if source.report_batch_item_failures else ""
            lines.append(f"  SQS            {queue} -> {source.function} (batch {source.batch_size}{failures})")
        for stream in self.stream_sources:
            lines.append(f"  Table stream   -> {stream.function} (batch {stream.batch_size}, as Lambda's mapping)")
        if self.events is not None:
            lines.append(f"  CRM events     {url}/_local/events   (what reached the event bus)")
        lines.append(f"  Embedded AWS   moto {self.moto.endpoint} (data lives until Ctrl-C)")
        if self.simulator is not None:
            lines.append(f"  Graph API      simulator {self.simulator.base_url} (status webhooks -> {url}/webhook)")
            lines.append(f"                 sent requests: {url}/_local/graph/requests")
        else:
            lines.append("  Graph API      REAL (WHATSAPP_ACCESS_TOKEN is set): messages reach real phones")
        lines += [
            f"  Verify token   {verify_token()}",
            f"  App secret     {app_secret()}   (local only)",
            "",
        ]
        if any(not route.is_open for route in self.routes):
            lines += [
                "  Authenticated routes are OPEN here: IAM (or JWT) cannot be checked locally.",
                f"  The stack listens on {self.options.host} only; do not expose this port.",
                "",
            ]
        for logical_id, error in self.warm_errors.items():
            lines.append(f"  ! {logical_id} failed to start: {error.get('errorType')}: {error.get('errorMessage')}")
        lines += ["Try:", *self.example_commands(python), ""]
        return "\n".join(lines)

    def example_commands(self, python: str) -> list[str]:
        assert self.api is not None
        url = self.api.url
        commands: list[str] = []
        if self._has_route("GET", "/webhook"):
            query = f"hub.mode=subscribe&hub.verify_token={verify_token()}&hub.challenge=42"
            commands.append(f"  curl -sS '{url}/webhook?{query}'")
        if self._has_route("POST", "/webhook"):
            # Each lead once: a second message of the same intent within AutoReplyCooldownMinutes gets no reply.
            commands.append(
                f"  {python} scripts/sign_webhook.py --url {url}/webhook events/webhook_post_text_he.json"
                "   # a lead asks for a meeting (re-stamped to now)"
            )
            commands.append(
                f"  {python} scripts/sign_webhook.py --url {url}/webhook --from {SECOND_LEAD} "
                + shlex.quote("--text=Hi, is the apartment still available?")
                + "   # another lead, in English"
            )
            if self.simulator is not None:
                commands.append(f"  curl -sS {url}/_local/graph/requests   # the auto-replies, as Meta received them")
            if self.events is not None:
                commands.append(f"  curl -sS {url}/_local/events           # the CRM events the conversation published")
        if self._has_route("POST", "/messages"):
            body = json.dumps(
                {"to": f"+{DEMO_LEAD}", "type": "text", "text": {"body": "שלום! מה שלומך?"}}, ensure_ascii=False
            )
            commands.append(
                f"  curl -sS -X POST {url}/messages -H 'content-type: application/json' -d {shlex.quote(body)}"
                "   # after the lead wrote: free text needs the 24-hour window"
            )
        if self._has_route("GET", "/conversations/{wa_id}/messages"):
            commands.append(f"  curl -sS {url}/conversations/{DEMO_LEAD}/messages   # the conversation, both ways")
        if self._has_route("GET", "/health"):
            commands.append(f"  curl -sS {url}/health")
        port = "" if self.api.port == DEFAULT_PORT else f"{PORT_ENV}={self.api.port} "
        commands.append(f"  {port}make demo   # a Hebrew-speaking lead books a meeting, end to end")
        return commands


def _fault_settings() -> dict[str, Any]:
    from local.faults import METER_DIR_ENV, FaultConfig

    return {**FaultConfig.from_environment().describe(), "meter_dir": os.environ.get(METER_DIR_ENV)}


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def run(options: StackOptions, ready: Callable[[LocalStack], None] | None = None) -> int:
    """Start, print the banner, wait for Ctrl-C or SIGTERM, stop. The exit code is 0 on a clean stop."""
    stopping = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack = LocalStack(options)
        stack.start()
    except Exception as error:  # a busy port, a broken template: one clear line, not a traceback
        print(f"local stack: cannot start: {error}", file=sys.stderr)
        return 1
    try:
        print(stack.banner(), flush=True)
        if ready is not None:
            ready(stack)
        while not stopping.wait(0.5):
            pass
        print("\nstopping the local stack...", flush=True)
    finally:
        started = time.monotonic()
        stack.stop()
    print(f"stopped ({time.monotonic() - started:.1f}s); nothing left running.", flush=True)
    return 0
