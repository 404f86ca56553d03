"""How the send and read APIs answer failures: one JSON shape, one status per cause, never a trace or token.

Both API functions install these handlers, so a Graph error or an invalid request reads the same on every
route. docs/api.md lists the table; tests/integration pin it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

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
from whatsapp_crm.http import error_response
from whatsapp_crm.observability import MetricUnit, logger, metrics

TEMPLATE_HINT = "Only an approved template can be sent until the lead writes again; send type 'template'."
_LOCATIONS = ("body", "query", "path", "header")


def _is_union_tag(part: Any, document: Any, is_last: bool) -> bool:
    # pydantic puts the discriminator's value into `loc` (["body", "text", "text", "body"]); the caller
    # never wrote that step. A tag names the `type` of the object it stands in and is never the last step.
    return not is_last and isinstance(document, Mapping) and document.get("type") == part


def field_path(loc: Sequence[Any], document: Any) -> str:
    """`("body", "interactive", "interactive", "button", "action", "buttons", 3)` -> `interactive.action.buttons[3]`."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    path = ""
    current = document
    tag_skipped = False
    for index, part in enumerate(parts):
        if not tag_skipped and _is_union_tag(part, current, index == len(parts) - 1):
            tag_skipped = True
            continue
        tag_skipped = False
        if isinstance(part, int):
            path += f"[{part}]"
            current = current[part] if isinstance(current, list) and -len(current) <= part < len(current) else None
        else:
            path = f"{path}.{part}" if path else str(part)
            current = current.get(part) if isinstance(current, Mapping) else None
    return path


def _message(error: Mapping[str, Any]) -> str:
    text = str(error.get("msg", "invalid value"))
    return text.removeprefix("Value error, ")


def validation_error_response(error: RequestValidationError, document: Any = None) -> Response[str]:
    """`document` is the decoded request body, used to name fields the way the caller wrote them."""
    problems = []
    for item in error.errors():
        loc = item.get("loc", ())
        if item.get("type") == "json_invalid":
            problems.append({"field": "body", "message": "the body is not valid JSON"})
            continue
        where = loc[0] if loc else "body"
        problems.append({"field": field_path(loc, document) or str(where), "message": _message(item)})
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


def _decoded_body(app: APIGatewayHttpResolver) -> Any:
    try:
        return app.current_event.json_body
    except (ValueError, TypeError):
        return None


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    """The failures every API route shares. Route-specific domain errors are mapped by each function."""

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(error: RequestValidationError) -> Response[str]:
        return validation_error_response(error, _decoded_body(app))

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
        logger.exception("unexpected API failure")
        return error_response(500, "internal_error", "unexpected error")
