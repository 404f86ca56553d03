"""Lambda-like execution environments for the local stack: one worker process per function instance.

Why processes and not a lock around os.environ: handlers read os.environ on first use and cache what they
build from it (settings, boto3 clients, adapters), the shared layer's modules are process-wide singletons,
and os.environ is one dict for every thread of a process. A lock would serialise every function behind one
another and deadlock the moment a function's call loops back into the stack (the responder calls the Graph
simulator, which posts a status webhook to WebhookFunction while the responder still holds the lock).
A worker started with exactly its function's environment has none of these problems and behaves the way
Lambda does: module state survives between invocations of one instance, instances never share it, a
timeout kills the instance, a crash costs one invocation and the next one cold-starts a fresh instance.

Parent and worker talk JSON lines: requests on the worker's stdin, replies on its original stdout. The
worker points its own stdout at stderr, so whatever the handler prints (Powertools logs) reaches the
terminal, prefixed with the function's logical id.

Run as `python -m local.runtime <LogicalId> <template> <timeout>` only by `FunctionPool`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from local.defaults import LOCAL_ACCOUNT_ID, LOCAL_REGION
from local.template import ROOT, TEMPLATE_PATH, CreatedResources, function_environment, resources_of_type

FUNCTION_TYPE = "AWS::Serverless::Function"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
# Lambda gives a function's init phase 10 s on top of its timeout; a laptop importing from a cold disk
# may need longer, and a slow first import is not a bug worth failing the local stack for.
INIT_TIMEOUT_SECONDS = 30.0
# Variables from the developer's shell that must never reach a function: real AWS credentials or
# endpoints would send local traffic to a real account, and WhatsApp overrides would bypass the secret.
_SCRUBBED_PREFIXES = ("AWS_", "WHATSAPP_", "POWERTOOLS_", "PYTHONPATH", "LAMBDA_")


@dataclass(frozen=True)
class FunctionSpec:
    """What Lambda needs to run one function of template.yaml, resolved to local paths and resources."""

    logical_id: str
    code_dir: Path
    handler: str
    timeout_seconds: float
    memory_mb: int
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    template_path: Path = TEMPLATE_PATH


def _globals(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template.get("Globals", {}).get("Function", {}))


def _layer_dir(template: dict[str, Any], reference: Any) -> Path | None:
    """Where a layer's importable code sits: its ContentUri with a python BuildMethod, else ContentUri/python."""
    logical_id = reference.get("Ref") if isinstance(reference, dict) else None
    layer = template.get("Resources", {}).get(logical_id or "")
    if not layer or layer.get("Type") != LAYER_TYPE:
        return None  # a layer from another account or stack: nothing local to put on the path
    content = ROOT / str(layer["Properties"]["ContentUri"])
    build_method = str(layer.get("Metadata", {}).get("BuildMethod", ""))
    if build_method.startswith("python"):
        return content
    return content / "python" if (content / "python").is_dir() else content


def layer_dirs(template: dict[str, Any]) -> list[Path]:
    """The importable directories of every layer in the template (for tools that import the layer)."""
    found = [_layer_dir(template, {"Ref": logical_id}) for logical_id in resources_of_type(template, LAYER_TYPE)]
    return [path for path in found if path is not None]


def use_layers(template: dict[str, Any] | None = None) -> None:
    """Put the template's layers on sys.path, as Lambda does with /opt/python (idempotent)."""
    from local.template import load_template

    for path in reversed(layer_dirs(template or load_template())):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def function_specs(
    template: dict[str, Any],
    created: CreatedResources,
    parameters: dict[str, str] | None = None,
    template_path: Path = TEMPLATE_PATH,
) -> dict[str, FunctionSpec]:
    """Every zip-packaged Python function of the template, with the environment `sam deploy` would give it."""
    defaults = _globals(template)
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources_of_type(template, FUNCTION_TYPE).items():
        properties = resource.get("Properties", {})
        runtime = str(properties.get("Runtime", defaults.get("Runtime", "")))
        if "CodeUri" not in properties or not runtime.startswith("python"):
            print(f"local stack: skipping {logical_id} (only zip-packaged Python functions run locally)")
            continue
        # SAM merges list-valued Globals by prepending them to the function's own list.
        layers = list(defaults.get("Layers", [])) + list(properties.get("Layers", []))
        layer_dirs = tuple(path for path in (_layer_dir(template, layer) for layer in layers) if path is not None)
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=ROOT / str(properties["CodeUri"]),
            handler=str(properties["Handler"]),
            timeout_seconds=float(properties.get("Timeout", defaults.get("Timeout", 3))),
            memory_mb=int(properties.get("MemorySize", defaults.get("MemorySize", 128))),
            layer_dirs=layer_dirs,
            environment=function_environment(template, logical_id, created, parameters),
            events=dict(properties.get("Events") or {}),
            template_path=template_path,
        )
    return specs


def worker_environment(spec: FunctionSpec, aws_endpoint: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The process environment of one function instance: the shell's basics, local AWS, then the template's."""
    shell = dict(os.environ if base is None else base)
    env = {name: value for name, value in shell.items() if not name.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        AWS_ENDPOINT_URL=aws_endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_REGION=LOCAL_REGION,
        AWS_DEFAULT_REGION=LOCAL_REGION,
        AWS_LAMBDA_FUNCTION_NAME=spec.logical_id,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(spec.memory_mb),
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        # Lambda's path order: the function's code, then its layers.
        PYTHONPATH=os.pathsep.join(str(path) for path in (spec.code_dir, *spec.layer_dirs)),
        PYTHONUNBUFFERED="1",
    )
    env.update(spec.environment)
    return env


@dataclass(frozen=True)
class Invocation:
    """One invocation's outcome, as Lambda reports it to its caller."""

    payload: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    init_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


LogSink = Callable[[str, str], None]


def print_log(logical_id: str, line: str) -> None:
    sys.stderr.write(f"{logical_id} | {line}")
    if not line.endswith("\n"):
        sys.stderr.write("\n")
    sys.stderr.flush()


class _Instance:
    """One worker process: one function, one invocation at a time."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log: LogSink) -> None:
        self.spec = spec
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.runtime",
                spec.logical_id,
                str(spec.template_path),
                str(spec.timeout_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            # Its own session: Ctrl-C in the terminal reaches the stack only, which then stops workers in order.
            start_new_session=True,
        )
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.init_ms: float | None = None
        self.ready = False
        self.dead = False
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._read_replies, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._forward_logs, args=(self.process.stderr, log), daemon=True).start()

    def _read_replies(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                self._replies.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self._replies.put(None)

    def _forward_logs(self, stream: IO[bytes], log: LogSink) -> None:
        for line in stream:
            log(self.spec.logical_id, line.decode("utf-8", errors="replace"))

    def _reply(self, deadline: float) -> dict[str, Any] | None:
        try:
            return self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return {"type": "timeout"}

    def wait_ready(self) -> dict[str, Any] | None:
        """None once the handler is imported, else the init error (Lambda's Runtime.* errors)."""
        if self.ready:
            return None
        reply = self._reply(self.started + INIT_TIMEOUT_SECONDS)
        if reply is not None and reply.get("type") == "ready":
            self.ready = True
            self.init_ms = float(reply.get("init_ms", 0.0))
            return None
        self.kill()
        if reply is None:
            return {"errorType": "Runtime.ExitError", "errorMessage": "the function's process exited during init"}
        if reply.get("type") == "timeout":
            return {"errorType": "Runtime.InitTimeout", "errorMessage": f"init exceeded {INIT_TIMEOUT_SECONDS:.0f}s"}
        return {key: reply[key] for key in ("errorType", "errorMessage") if key in reply}

    def invoke(self, event: Any, request_id: str) -> Invocation:
        cold = not self.ready
        init_error = self.wait_ready()
        init_ms = self.init_ms if cold else None
        if init_error is not None:
            return Invocation(error=init_error, init_ms=init_ms)
        assert self.process.stdin is not None
        started = time.monotonic()
        try:
            request = json.dumps({"event": event, "request_id": request_id}, ensure_ascii=False)
            self.process.stdin.write(request.encode("utf-8") + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return Invocation(error={"errorType": "Runtime.ExitError", "errorMessage": "the function's process died"})
        reply = self._reply(started + self.spec.timeout_seconds)
        duration_ms = (time.monotonic() - started) * 1000
        if reply is None:
            self.kill()
            return Invocation(
                error={"errorType": "Runtime.ExitError", "errorMessage": "the function's process exited"},
                duration_ms=duration_ms,
                init_ms=init_ms,
            )
        if reply.get("type") == "timeout":
            # Lambda ends the execution environment of a timed-out invocation; so do we.
            self.kill()
            message = f"Task timed out after {self.spec.timeout_seconds:.2f} seconds"
            return Invocation(
                error={"errorType": "Sandbox.Timedout", "errorMessage": message},
                duration_ms=duration_ms,
                init_ms=init_ms,
            )
        if reply.get("type") == "error":
            error: dict[str, Any] = {
                key: reply[key] for key in ("errorType", "errorMessage", "stackTrace") if key in reply
            }
            return Invocation(error=error, duration_ms=duration_ms, init_ms=init_ms)
        return Invocation(payload=reply.get("payload"), duration_ms=duration_ms, init_ms=init_ms)

    def kill(self) -> None:
        self.dead = True
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, grace_seconds: float) -> None:
        """Close stdin (the worker's loop ends and it exits), then insist."""
        self.dead = True
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class FunctionPool:
    """The execution environments of one function: grows on demand up to `max_instances`, like Lambda."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], *, max_instances: int = 4, log: LogSink = print_log):
        self.spec = spec
        self._env = env
        self._log = log
        self._max = max_instances
        self._idle: list[_Instance] = []
        self._all: list[_Instance] = []
        self._condition = threading.Condition()
        self._closed = False

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    def pids(self) -> list[int]:
        with self._condition:
            return [instance.process.pid for instance in self._all if instance.process.poll() is None]

    def _acquire(self) -> _Instance:
        with self._condition:
            while True:
                if self._closed:
                    raise RuntimeError(f"{self.logical_id} is stopped")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self._max:
                    instance = _Instance(self.spec, self._env, self._log)
                    self._all.append(instance)
                    return instance
                self._condition.wait()

    def _release(self, instance: _Instance) -> None:
        with self._condition:
            if instance.dead or self._closed:
                if instance in self._all:
                    self._all.remove(instance)
                if not instance.dead:
                    instance.stop(grace_seconds=2)
            else:
                self._idle.append(instance)
            self._condition.notify()

    def warm(self) -> dict[str, Any] | None:
        """Start one instance and import the handler now: import errors show at start, not on first use."""
        instance = self._acquire()
        try:
            return instance.wait_ready()
        finally:
            self._release(instance)

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        instance = self._acquire()
        try:
            return instance.invoke(event, request_id)
        finally:
            self._release(instance)

    def stop(self, grace_seconds: float = 3.0) -> None:
        with self._condition:
            self._closed = True
            instances = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._condition.notify_all()
        for instance in instances:
            instance.stop(grace_seconds)


# --- the worker side -------------------------------------------------------------------------------------


def _requests(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        if line.strip():
            yield json.loads(line)


def _error(error: BaseException) -> dict[str, Any]:
    return {
        "type": "error",
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error),
    }


def _serve(logical_id: str, template_path: Path, timeout: float, replies: IO[str]) -> int:
    from local.apigw import LambdaContext
    from local.handlers import handler_name, load_function_module
    from local.template import load_template

    def reply(message: dict[str, Any]) -> None:
        try:
            line = json.dumps(message, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            line = json.dumps({"type": "error", "errorType": "Runtime.MarshalError", "errorMessage": str(error)})
        replies.write(line + "\n")
        replies.flush()

    started = time.monotonic()
    try:
        # Injected AWS faults and call metering, only when the stack was started with them (local/faults.py).
        from local import faults

        faults.install_worker(logical_id)
        template = load_template(template_path)
        module = load_function_module(logical_id, template)
        handler = faults.wrap_handler(getattr(module, handler_name(logical_id, template)))
    except Exception as error:  # Lambda reports any init failure as Runtime.ImportModuleError
        traceback.print_exc()
        reply({**_error(error), "type": "init_error", "errorType": "Runtime.ImportModuleError"})
        return 1
    reply({"type": "ready", "init_ms": (time.monotonic() - started) * 1000})
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{logical_id}"
    for request in _requests(sys.stdin):
        context = LambdaContext(
            function_name=logical_id,
            memory_limit_in_mb=memory,
            invoked_function_arn=arn,
            aws_request_id=request["request_id"],
            timeout_seconds=max(1, round(timeout)),
        )
        try:
            reply({"type": "result", "payload": handler(request["event"], context)})
        except Exception as error:  # the function's own error: reported to the caller as Lambda does
            traceback.print_exc()
            reply(_error(error))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m local.runtime <LogicalId> <template> <timeout>  (started by the local stack)")
        return 2
    # The stack stops its workers in order; a terminal's Ctrl-C must not kill a handler mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return _serve(argv[0], Path(argv[1]), float(argv[2]), replies)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
