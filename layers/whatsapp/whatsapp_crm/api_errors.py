"""How the send and read APIs answer failures: one JSON shape, one status per cause, never a trace or token.

Both API functions install these handlers, so a Graph error or an invalid request reads the same on every
route. docs/api.md lists the table; tests/integration pin it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from whatsapp_crm.errors import ConfigurationError, StoreUnavailableError
from whatsapp_crm.graph.errors import (
    AuthError,
    GraphAPIError,
    GraphUnavailableError,
    InvalidMessageError,
    MarketingOptOutError,
    RateLimitError,
    ReengagementRequiredError,
)
from whatsapp_crm.http_responses import error_response
from whatsapp_crm.observability import MetricUnit, logger, metrics

_REQUEST_PARSING_MODULE = "aws_lambda_powertools.event_handler.middlewares.openapi_validation"

TEMPLATE_HINT = "Only an approved template can be sent until the lead writes again; send type 'template'."
_LOCATIONS = ("body", "query", "path", "header")


def _unwrap(annotation: Any) -> tuple[Any, str | None]:
    """The type under Annotated/Optional wrappers, and the discriminator declared on the way, if any."""
    discriminator: str | None = None
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *metadata = get_args(annotation)
            for item in metadata:
                if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
                    discriminator = item.discriminator
            continue
        if origin in (Union, UnionType):
            members = [member for member in get_args(annotation) if member is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, discriminator


def _union_member(union: Any, discriminator: str, tag: str) -> Any:
    for member in get_args(union):
        if isinstance(member, type) and issubclass(member, BaseModel) and discriminator in member.model_fields:
            if tag in get_args(member.model_fields[discriminator].annotation):
                return member
    return None


def _field_type(model: Any, name: str) -> Any:
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or name not in model.model_fields:
        return None
    field = model.model_fields[name]
    return Annotated[field.annotation, field] if field.discriminator else field.annotation


def field_path(loc: Sequence[Any], root: Any = None) -> str:
    """A pydantic `loc` as the caller wrote the field: `text.body`, `interactive.action.buttons[3]`.

    pydantic puts the value of a discriminated union's tag into `loc` (`["text", "text", "body"]`); the
    caller never wrote that step. Walking `root` (the body's type) alongside tells tags from keys.
    """
    return _walk(loc, root)[0]


def _walk(loc: Sequence[Any], root: Any) -> tuple[str, Any]:
    """(the field path, the type found there) for a pydantic `loc` walked from `root`."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    path = ""
    annotation = root
    for part in parts:
        current, discriminator = _unwrap(annotation)
        if discriminator and get_origin(current) in (Union, UnionType) and isinstance(part, str):
            annotation = _union_member(current, discriminator, part)
            continue
        if isinstance(part, int):
            path += f"[{part}]"
            annotation = get_args(current)[0] if get_origin(current) is list else None
        else:
            path = f"{path}.{part}" if path else str(part)
            annotation = _field_type(current, part)
    return path, annotation


def error_field(error: Mapping[str, Any], root: Any = None) -> str:
    """The field a pydantic error is about; an unknown union tag points at that object's `type`."""
    loc = error.get("loc", ())
    if loc and loc[0] in ("query", "path", "header"):
        root = None  # the body's type says nothing about a parameter's name (a header is not a union tag)
    path = field_path(loc, root)
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        return f"{path}.type" if path else "type"
    if path:
        return path
    return str(loc[0]) if loc else "body"


def _union_tags(root: Any, discriminator: str) -> list[str]:
    """The values the discriminator may take in the body's union (`text`, `template`, ...), in order."""
    union, _ = _unwrap(root)
    tags: list[str] = []
    for member in get_args(union):
        if isinstance(member, type) and issubclass(member, BaseModel) and discriminator in member.model_fields:
            tags += [tag for tag in get_args(member.model_fields[discriminator].annotation) if isinstance(tag, str)]
    return tags


def _message(error: Mapping[str, Any], root: Any = None) -> str:
    if error.get("type") == "union_tag_not_found":
        # pydantic says "Unable to extract tag using discriminator 'type'": say what is missing and what exists.
        discriminator = str((error.get("ctx") or {}).get("discriminator", "type")).strip("'")
        tags = _union_tags(_walk(error.get("loc", ()), root)[1], discriminator)
        choices = f": one of {', '.join(tags)}" if tags else ""
        return f"`{discriminator}` is required, the kind of message{choices}"
    text = str(error.get("msg", "invalid value"))
    return text.removeprefix("Value error, ")


def validation_error_response(error: RequestValidationError, body_type: Any = None) -> Response[str]:
    """`body_type` is the route's body annotation, used to name fields the way the caller wrote them."""
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            problems.append({"field": "body", "message": "the body is not valid JSON"})
            continue
        problems.append({"field": error_field(item, body_type), "message": _message(item, body_type)})
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return error_response(
        400, "validation_error", first["message"], field=first["field"], errors=problems if len(problems) > 1 else None
    )


def invalid_field(field: str, message: str) -> Response[str]:
    return error_response(400, "validation_error", message, field=field)


def not_found(message: str = "no such resource") -> Response[str]:
    return error_response(404, "not_found", message)


def rate_limited(message: str, retry_after: int, **details: Any) -> Response[str]:
    return error_response(
        429,
        "rate_limited",
        message,
        headers={"Retry-After": str(retry_after)},
        retry_after_seconds=retry_after,
        **details,
    )


def _graph_details(error: GraphAPIError) -> dict[str, Any] | None:
    """Meta's answer, when there was one (a network failure has none)."""
    if error.code is None and error.http_status is None:
        return None
    return error.as_dict()


def graph_error_response(error: GraphAPIError) -> Response[str]:
    graph_error = _graph_details(error)
    logger.warning(
        "Graph API refused the request",
        extra={"graph_error_code": error.code, "http_status": error.http_status, "fbtrace_id": error.fbtrace_id},
    )
    if isinstance(error, ReengagementRequiredError):
        return error_response(
            422,
            "outside_customer_service_window",
            "WhatsApp refused a free-form message outside the 24-hour customer service window",
            hint=TEMPLATE_HINT,
            graph_error=graph_error,
        )
    if isinstance(error, RateLimitError):
        retry_after = max(1, int(error.retry_after_seconds or 1))
        return rate_limited("WhatsApp's rate limit was reached", retry_after, scope="whatsapp", graph_error=graph_error)
    if isinstance(error, MarketingOptOutError):
        return error_response(
            409, "recipient_opted_out", "the recipient stopped marketing messages", graph_error=graph_error
        )
    if isinstance(error, GraphUnavailableError):
        metrics.add_metric(name="GraphUnavailable", unit=MetricUnit.Count, value=1)
        return error_response(
            503,
            "whatsapp_unavailable",
            "WhatsApp did not answer successfully after retries; try again later",
            graph_error=graph_error,
        )
    if isinstance(error, AuthError):
        # Nobody can fix this but an operator rotating the token: make it loud.
        metrics.add_metric(name="GraphAuthFailures", unit=MetricUnit.Count, value=1)
        logger.error("the WhatsApp access token was refused", extra={"graph_error_code": error.code})
    return error_response(502, "whatsapp_error", "WhatsApp refused the request", graph_error=graph_error)


def _raised_by_request_parsing(error: BaseException) -> bool:
    """True when Powertools' request validation itself raised, before any route code ran.

    It lets a few body-reading failures through as bare exceptions (a multipart type without a boundary is
    a ValueError). Only the innermost frame is checked: route code also runs inside that middleware.
    """
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return bool(traceback.tb_frame.f_globals.get("__name__") == _REQUEST_PARSING_MODULE)


def _internal_error() -> Response[str]:
    logger.exception("unexpected API failure")
    return error_response(500, "internal_error", "unexpected error")


def install_error_handlers(app: APIGatewayHttpResolver, body_type: Any = None) -> None:
    """The failures every API route shares. Route-specific domain errors are mapped by each function.

    `body_type` is the request body's annotation (for POST /messages, the discriminated send union).
    """

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(error: RequestValidationError) -> Response[str]:
        return validation_error_response(error, body_type)

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    def _not_json(error: RequestUnsupportedContentType) -> Response[str]:
        # Powertools' validation refuses a body that is not declared JSON; left alone it would be a 500.
        return error_response(400, "unsupported_content_type", "send the body as Content-Type: application/json")

    @app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
    def _not_utf8(error: UnicodeDecodeError) -> Response[str]:
        return error_response(400, "validation_error", "the body is not UTF-8 encoded JSON", field="body")

    @app.exception_handler(ValueError)  # type: ignore[untyped-decorator]
    def _unreadable(error: ValueError) -> Response[str]:
        if _raised_by_request_parsing(error):
            return error_response(400, "unsupported_content_type", "send the body as Content-Type: application/json")
        return _internal_error()

    @app.exception_handler(GraphAPIError)  # type: ignore[untyped-decorator]
    def _graph(error: GraphAPIError) -> Response[str]:
        return graph_error_response(error)

    @app.exception_handler(StoreUnavailableError)  # type: ignore[untyped-decorator]
    def _store(error: StoreUnavailableError) -> Response[str]:
        logger.exception("the conversation table is unavailable")
        return error_response(
            503,
            "temporarily_unavailable",
            "the service cannot reach its storage; retry later",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler([ConfigurationError, InvalidMessageError])  # type: ignore[untyped-decorator]
    def _misconfigured(error: Exception) -> Response[str]:
        logger.error("API misconfigured", extra={"problem": str(error)})
        return error_response(500, "configuration_error", "the service is not configured")

    @app.not_found
    def _no_route(error: Exception) -> Response[str]:
        return not_found("no such route")

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(error: Exception) -> Response[str]:
        return _internal_error()
