"""The template's HTTP API on loopback: every HttpApi route served by invoking its real function.

Requests become API Gateway HTTP API payload-2.0 events (local.apigw), responses are mapped back the way
API Gateway maps them: a dict with statusCode is taken as the response, anything else becomes a 200 JSON
body, a function error or timeout becomes API Gateway's own 500. Unknown routes get API Gateway's own
`{"message":"Not Found"}` so clients see locally exactly what they will see in AWS.

Authorizers are not enforced (IAM signatures cannot be checked without AWS); the server binds to loopback
only, and routes that need auth in AWS receive a local caller identity in requestContext.authorizer.
"""

from __future__ import annotations

import base64
import errno
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from local.apigw import http_api_event
from local.defaults import LOCAL_ACCOUNT_ID

HTTP_API_TYPE = "AWS::Serverless::HttpApi"
DEFAULT_ROUTE = "$default"
# API Gateway HTTP API's payload limit.
MAX_BODY_BYTES = 10 * 1024 * 1024
_PARAMETER = re.compile(r"\{([^{}/]+?)(\+?)\}")


class Invoker(Protocol):
    def __call__(self, logical_id: str, event: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Route:
    """One HttpApi event of one function: `GET /conversations/{wa_id}/messages` -> ConversationsFunction."""

    method: str  # upper-case, or ANY
    path: str  # as written in the template, or $default
    function: str
    authorizer: str  # NONE, AWS_IAM, a JWT authorizer's name, or a description of a conditional one

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"

    @property
    def is_open(self) -> bool:
        return self.authorizer == "NONE"

    def _pattern(self) -> re.Pattern[str]:
        parts: list[str] = []
        position = 0
        for match in _PARAMETER.finditer(self.path):
            parts.append(re.escape(self.path[position : match.start()]))
            name, greedy = match.group(1), match.group(2)
            parts.append(f"(?P<{_group(name)}>.+)" if greedy else f"(?P<{_group(name)}>[^/]+)")
            position = match.end()
        parts.append(re.escape(self.path[position:]))
        return re.compile("".join(parts) + r"\Z")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route serves the request, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path == DEFAULT_ROUTE:
            return {}
        found = self._pattern().match(path)
        if found is None:
            return None
        names = [match.group(1) for match in _PARAMETER.finditer(self.path)]
        return {name: unquote(found.group(_group(name))) for name in names}

    def priority(self) -> tuple[int, int, int, int, int]:
        """API Gateway prefers exact paths, then parameters, then greedy ones; a method over ANY."""
        parameters = [match.group(2) for match in _PARAMETER.finditer(self.path)]
        literal_segments = sum(1 for part in self.path.split("/") if part and "{" not in part)
        return (
            self.path == DEFAULT_ROUTE,
            sum(1 for greedy in parameters if greedy),
            len(parameters),
            -literal_segments,
            self.method == "ANY",
        )


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def _evaluate(template: dict[str, Any], value: Any) -> Any:
    """A condition or value of the template with every parameter at its default; None if it cannot tell."""
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        return None if parameter is None else parameter.get("Default")
    if "Condition" in value:
        return _evaluate(template, template.get("Conditions", {}).get(value["Condition"]))
    if "Fn::Equals" in value:
        left, right = (_evaluate(template, item) for item in value["Fn::Equals"])
        return None if left is None or right is None else str(left) == str(right)
    if "Fn::Not" in value:
        inner = _evaluate(template, value["Fn::Not"][0])
        return None if inner is None else not inner
    if "Fn::And" in value or "Fn::Or" in value:
        operands = value.get("Fn::And") or value.get("Fn::Or") or []
        items = [_evaluate(template, item) for item in operands]
        if None in items:
            return None
        return all(items) if "Fn::And" in value else any(items)
    if "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        chosen = _evaluate(template, {"Condition": condition})
        return None if chosen is None else _evaluate(template, when_true if chosen else when_false)
    return None


def _describe(template: dict[str, Any], value: Any) -> str:
    """The authorizer a route gets with the template's default parameters (what `sam deploy` does by default)."""
    if value is None:
        return "NONE"
    resolved = _evaluate(template, value)
    if isinstance(resolved, str):
        return resolved
    return "conditional " + json.dumps(value, default=str)


def _default_authorizer(template: dict[str, Any], api_reference: Any) -> Any:
    api_id = api_reference.get("Ref") if isinstance(api_reference, dict) else None
    api = template.get("Resources", {}).get(api_id or "", {})
    if api.get("Type") == HTTP_API_TYPE and "DefaultAuthorizer" in api.get("Properties", {}).get("Auth", {}):
        return api["Properties"]["Auth"]["DefaultAuthorizer"]
    return template.get("Globals", {}).get("HttpApi", {}).get("Auth", {}).get("DefaultAuthorizer")


def routes(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every function in the template, most specific first."""
    found: list[Route] = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            version = str(properties.get("PayloadFormatVersion", "2.0"))
            if version != "2.0":
                raise ValueError(f"{logical_id}.{name}: payload format {version} is not served locally (2.0 only)")
            authorizer = properties.get("Auth", {}).get("Authorizer")
            if authorizer is None:
                authorizer = _default_authorizer(template, properties.get("ApiId"))
            found.append(
                Route(
                    method=str(properties.get("Method", "ANY")).upper(),
                    path=str(properties.get("Path", DEFAULT_ROUTE)),
                    function=logical_id,
                    authorizer=_describe(template, authorizer),
                )
            )
    return sorted(found, key=Route.priority)


def find_route(table: Iterable[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in table:
        parameters = route.match(method, path)
        if parameters is not None:
            return route, parameters
    return None


def local_identity(route: Route) -> dict[str, Any]:
    """What API Gateway puts in requestContext.authorizer after its authorizer allowed the caller."""
    if route.authorizer == "AWS_IAM" or route.authorizer.startswith("conditional"):
        return {
            "iam": {
                "accessKey": "LOCALACCESSKEY",
                "accountId": LOCAL_ACCOUNT_ID,
                "callerId": "LOCAL:local-developer",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local-developer",
                "userId": "LOCAL:local-developer",
            }
        }
    return {"jwt": {"claims": {"sub": "local-developer", "iss": "local"}, "scopes": None}}


def build_event(
    route: Route,
    path_parameters: dict[str, str],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
) -> dict[str, Any]:
    split = urlsplit(target)
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        # HTTP API joins repeated headers with commas.
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    cookies = joined.pop("cookie", None)
    event = http_api_event(
        method,
        split.path,
        body=body if body else None,
        headers=joined,
        query=split.query,
        path_parameters=path_parameters,
        route_key=route.route_key,
    )
    if cookies:
        event["cookies"] = [cookie.strip() for cookie in cookies.split(";") if cookie.strip()]
    if not route.is_open:
        event["requestContext"]["authorizer"] = local_identity(route)
    return event


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json(status: int, document: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return HttpResponse(status, [("Content-Type", "application/json"), *(headers or [])], body)


NOT_FOUND = _json(404, {"message": "Not Found"})
INTERNAL_ERROR = _json(500, {"message": "Internal Server Error"})


def response_from_lambda(result: Any) -> HttpResponse:
    """API Gateway's payload-2.0 response mapping."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _json(200, result)
    body: Any = result.get("body")
    if body is None:
        raw = b""
    elif result.get("isBase64Encoded"):
        raw = base64.b64decode(str(body))
    else:
        raw = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(value)) for value in values)
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(int(result["statusCode"]), headers, raw)


LocalEndpoint = Callable[[str], HttpResponse]


def _read_body(stream: Any, headers: Any) -> bytes | None:
    """The request body, from Content-Length or chunked transfer encoding (API Gateway accepts both)."""
    if str(headers.get("Transfer-Encoding", "")).lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                stream.readline()
                return b"".join(chunks)
            chunks.append(stream.read(size))
            stream.readline()
    length = int(headers.get("Content-Length") or 0)
    return stream.read(length) if length else None


# A run of 7+ digits in a path is a phone number or wa_id (`/conversations/972525551234/messages`); the
# access log masks it as the functions' logs do (whatsapp_crm.observability.mask_phone).
_PHONE_IN_PATH = re.compile(r"(%2[bB]|\+)?(\d{7,})")
# A burst of 50 connections (a replay, a load test) must queue, not be refused: socketserver's default is 5.
LISTEN_BACKLOG = 128


def masked_path(path: str) -> str:
    from whatsapp_crm.observability import mask_phone

    return _PHONE_IN_PATH.sub(lambda match: (match.group(1) or "") + mask_phone(match.group(2)), path)


class PortInUseError(OSError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (another `make run`?); stop that, or pick another port: "
            f"make run LOCAL_STACK_PORT={port + 1}"
        )


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class LocalHttpApi:
    """A ThreadingHTTPServer that plays API Gateway for the template's routes.

    The socket is bound at construction, so a busy port fails at once; requests are served after start().
    """

    def __init__(
        self,
        table: list[Route],
        invoke: Callable[[str, dict[str, Any]], Any],
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.routes = table
        self._invoke = invoke
        self._log = log
        self._local: dict[tuple[str, str], LocalEndpoint] = {}
        self._host = host
        try:
            self._server = _Server((host, port), self._handler_class())
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port) from None
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def add_local_endpoint(self, method: str, path: str, endpoint: LocalEndpoint) -> None:
        """A stack-only endpoint (under /_local/), never one of the template's routes."""
        if not path.startswith("/_local/"):
            raise ValueError("local endpoints live under /_local/ so they cannot shadow a template route")
        self._local[(method.upper(), path)] = endpoint

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def dispatch(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None) -> HttpResponse:
        path = urlsplit(target).path
        local = self._local.get((method, path))
        if local is not None:
            return local(urlsplit(target).query)
        found = find_route(self.routes, method, path)
        if found is None:
            return NOT_FOUND
        route, parameters = found
        event = build_event(route, parameters, method, target, headers, body)
        started = time.monotonic()
        outcome = self._invoke(route.function, event)
        response = INTERNAL_ERROR if outcome.error is not None else response_from_lambda(outcome.payload)
        if self._log is not None:
            took = (time.monotonic() - started) * 1000
            failure = f" {outcome.error.get('errorType')}" if outcome.error else ""
            line = f"{method} {masked_path(path)} -> {response.status} ({route.function}, {took:.0f} ms){failure}"
            self._log(line)
        return response

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "local-http-api"

            def _handle(self) -> None:
                if int(self.headers.get("Content-Length") or 0) > MAX_BODY_BYTES:
                    self._send(_json(413, {"message": "Request Entity Too Large"}))
                    self.close_connection = True
                    return
                body = _read_body(self.rfile, self.headers)
                headers = [(name, value) for name, value in self.headers.items()]
                try:
                    response = api.dispatch(self.command, self.path, headers, body)
                except Exception as error:  # the stack itself failed: say so instead of hanging the client
                    if api._log is not None:
                        failure = type(error).__name__
                        api._log(f"{self.command} {masked_path(self.path)} -> 500 (local stack error: {failure})")
                    response = INTERNAL_ERROR
                self._send(response)

            def _send(self, response: HttpResponse) -> None:
                self.send_response(response.status)
                for name, value in response.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.send_header("apigw-requestid", base64.b32encode(time.time_ns().to_bytes(8)).decode()[:14])
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # dispatch() logs one line per invocation; http.server's lines would repeat it

        return Handler
