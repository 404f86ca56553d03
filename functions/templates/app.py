"""TemplatesFunction: GET /templates (the account's message templates as the cache holds them, refreshed from
Graph on `?refresh=true` or when never synced) and the scheduled sync (an EventBridge schedule event).

Thin by design: query validation, one domain call (whatsapp_crm.templates), the HTTP mapping of its refusals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Unpack

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.api_errors import install_error_handlers, rate_limited
from whatsapp_crm.api_models import TemplatesBody, body_doc, error_doc
from whatsapp_crm.graph.errors import GraphAPIError
from whatsapp_crm.http_responses import compact_json
from whatsapp_crm.observability import MetricUnit, logger, metrics
from whatsapp_crm.ratelimit import RateLimitedError
from whatsapp_crm.settings import TemplatesSettings, load
from whatsapp_crm.templates import (
    RefreshThrottledError,
    SyncReport,
    sync_templates,
)
from whatsapp_crm.wiring import TemplatesDoubles, TemplatesPorts, invoke

app = APIGatewayHttpResolver(enable_validation=True, serializer=compact_json)
install_error_handlers(app)

Refresh = Annotated[
    Literal["true", "false"] | None,
    Query(description="true: list Graph now (at most once a minute; 429 with Retry-After otherwise)"),
]
StatusFilter = Annotated[
    str | None, Query(pattern=r"^[A-Z_]{1,32}$", description="Only templates with this status, e.g. APPROVED")
]
NameFilter = Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,512}$", description="Only this template name")]


def _sync(ports: TemplatesPorts) -> SyncReport:
    report = sync_templates(ports.source, ports.store, policy=ports.policy, limiter=ports.limiter, clock=ports.clock)
    metrics.add_metric(name="TemplatesSynced", unit=MetricUnit.Count, value=report.listed)
    logger.info(
        "templates synced",
        extra={
            "listed": report.listed,
            "written": report.written,
            "removed": report.removed,
            "pages": report.pages,
            "skipped": report.skipped,
        },
    )
    return report


@app.get(
    "/templates",
    summary="The account's message templates, as Meta holds them",
    description=(
        "Synced from Graph (GET /{waba-id}/message_templates) on a schedule and on ?refresh=true, cached in "
        "DynamoDB; Meta's template status webhooks update the cache at once. POST /messages refuses a template "
        "that differs from its entry here (422 template_mismatch)."
    ),
    tags=["templates"],
    operation_id="listTemplates",
    responses={
        200: body_doc("The cached templates and when Graph was last listed", TemplatesBody),
        400: error_doc("validation_error: a query parameter is invalid"),
        429: error_doc("rate_limited: a refresh ran moments ago, or the hourly Graph budget is spent"),
        502: error_doc("whatsapp_error: Meta refused the listing (graph_error says why)"),
        503: error_doc("whatsapp_unavailable: Meta kept failing after retries"),
    },
)
def list_templates(refresh: Refresh = None, status: StatusFilter = None, name: NameFilter = None) -> TemplatesBody:
    ports = TemplatesPorts(load(TemplatesSettings))
    store = ports.store
    state = store.sync_state()
    if refresh == "true" or state is None or state.synced_at is None:
        _sync(ports)
        state = store.sync_state()
    templates = [
        template.as_json()
        for template in store.all_templates()
        if (status is None or template.status == status) and (name is None or template.name == name)
    ]
    body = TemplatesBody.model_validate(
        {
            "templates": templates,
            "synced_at": state.synced_at if state else None,
            "last_error": (state.last_error or None) if state else None,
        }
    )
    return body


@app.exception_handler(RefreshThrottledError)
def _throttled(error: RefreshThrottledError) -> Response[str]:
    return rate_limited(str(error), error.retry_after_seconds, scope="templates")


@app.exception_handler(RateLimitedError)
def _budget_spent(error: RateLimitedError) -> Response[str]:
    return rate_limited(
        f"the hourly budget of {error.limit} Graph template calls is spent",
        error.retry_after_seconds,
        scope="templates",
    )


def scheduled_sync() -> dict[str, Any]:
    """The schedule's run: a failure is logged and counted, never raised (the next run tries again, and
    EventBridge's own retries would only spend the management budget twice)."""
    try:
        report = _sync(TemplatesPorts(load(TemplatesSettings)))
    except RefreshThrottledError:
        logger.info("template sync skipped: another sync ran moments ago")
        return {"synced": False, "reason": "throttled"}
    except RateLimitedError:
        logger.warning("template sync skipped: the hourly Graph budget is spent")
        return {"synced": False, "reason": "budget"}
    except GraphAPIError as error:
        metrics.add_metric(name="TemplateSyncFailures", unit=MetricUnit.Count, value=1)
        logger.warning("template sync failed; the cache is kept as it was", extra={"graph_error": error.as_dict()})
        return {"synced": False, "reason": "graph_error", "graph_error": error.as_dict()}
    return {"synced": True, "listed": report.listed, "written": report.written, "removed": report.removed}


def _is_schedule(event: dict[str, Any]) -> bool:
    return event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _is_schedule(event):
        return scheduled_sync()
    return app.resolve(event, context)


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[TemplatesDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same routing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
