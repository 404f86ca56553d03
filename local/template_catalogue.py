"""The Graph simulator's message templates: a catalogue as Meta lists it, and Meta's checks of a template send.

The catalogue is in Meta's own shape (`GET /{waba-id}/message_templates`: name, language, status, category,
parameter_format, components with HEADER/BODY/FOOTER/BUTTONS). Sends are checked the way Meta refuses them:
132001 for a name that does not exist in that language (or is not approved yet), 132015 paused, 132016
disabled, 132000 for a parameter count that does not match. This is Meta's side of the contract, written
independently of the layer's own pre-send check (whatsapp_crm.templates), so each tests the other.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

DEFAULT_WABA_ID = "102290129340398"


def _template(
    template_id: str,
    name: str,
    language: str,
    status: str,
    category: str,
    components: list[dict[str, Any]],
    parameter_format: str = "POSITIONAL",
) -> dict[str, Any]:
    return {
        "id": template_id,
        "name": name,
        "language": language,
        "status": status,
        "category": category,
        "parameter_format": parameter_format,
        "components": components,
    }


def default_catalogue() -> list[dict[str, Any]]:
    """A real-estate agency's templates: approved (positional, named, media header, buttons), in review, paused,
    rejected. `viewing_reminder` takes no parameters and `property_update` two, as events/ and the benches send."""
    return copy.deepcopy(_DEFAULT)


_DEFAULT = [
    _template(
        "1001",
        "viewing_reminder",
        "he",
        "APPROVED",
        "UTILITY",
        [
            {"type": "BODY", "text": "שלום! תזכורת לסיור בנכס מחר. נשמח לראותך."},
            {"type": "FOOTER", "text": "להסרה השיבו הסר"},
        ],
    ),
    _template(
        "1002",
        "viewing_reminder",
        "en",
        "APPROVED",
        "UTILITY",
        [{"type": "BODY", "text": "Hi! A reminder of your viewing tomorrow. See you there."}],
    ),
    _template(
        "1003",
        "property_update",
        "he",
        "APPROVED",
        "MARKETING",
        [
            {
                "type": "BODY",
                "text": "שלום {{1}}, יש עדכון על הנכס ב{{2}}. רוצה לשמוע פרטים?",
                "example": {"body_text": [["דנה", "הרצל 10"]]},
            },
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "כן, ספרו לי"}]},
        ],
    ),
    _template(
        "1004",
        "brochure_followup",
        "he",
        "APPROVED",
        "MARKETING",
        [
            {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["https://example.com/b.pdf"]}},
            {
                "type": "BODY",
                "text": "{{1}}, מצורף הפרוספקט של {{2}}. אפשר לקבוע סיור בקישור.",
                "example": {"body_text": [["דנה", "פרויקט הגפן"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "URL", "text": "לקביעת סיור", "url": "https://example.com/tour/{{1}}"},
                    {"type": "QUICK_REPLY", "text": "לא עכשיו"},
                ],
            },
        ],
    ),
    _template(
        "1005",
        "mortgage_documents",
        "he",
        "APPROVED",
        "UTILITY",
        [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "בדיקת משכנתא - {{project_name}}",
                "example": {"header_text_named_params": [{"param_name": "project_name", "example": "הגפן"}]},
            },
            {
                "type": "BODY",
                "text": "שלום {{first_name}}, לבדיקת המשכנתא נא לשלוח {{document_list}} עד {{due_date}}.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "דנה"},
                        {"param_name": "document_list", "example": "תלושי שכר"},
                        {"param_name": "due_date", "example": "יום חמישי"},
                    ]
                },
            },
        ],
        parameter_format="NAMED",
    ),
    _template(
        "1006",
        "new_project_launch",
        "he",
        "PENDING",
        "MARKETING",
        [{"type": "BODY", "text": "פרויקט חדש ב{{1}}! הרשמה מוקדמת פתוחה."}],
    ),
    _template(
        "1007",
        "price_drop_alert",
        "he",
        "PAUSED",
        "MARKETING",
        [{"type": "BODY", "text": "המחיר של {{1}} ירד! בדקו עכשיו."}],
    ),
    _template(
        "1008",
        "open_house_invite",
        "he",
        "REJECTED",
        "MARKETING",
        [{"type": "BODY", "text": "בית פתוח ב{{1}} ביום {{2}}"}],
    ),
    # Meta's sample template, which every new WhatsApp Business Account has (`make smoke TO=...` sends it).
    _template(
        "1009",
        "hello_world",
        "en_US",
        "APPROVED",
        "UTILITY",
        [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to send a "
                "WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time "
                "to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
    ),
]


class TemplateRefusal(Exception):
    """A template send Meta would refuse: its Graph code and details."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _placeholders(text: Any) -> list[str]:
    found: list[str] = []
    for name in _PLACEHOLDER.findall(text if isinstance(text, str) else ""):
        if name not in found:
            found.append(name)
    return found


def _given(components: Sequence[Any], kind: str, index: str | None = None) -> list[Any]:
    for component in components:
        if not isinstance(component, Mapping) or str(component.get("type", "")).lower() != kind:
            continue
        if index is not None and str(component.get("index")) != index:
            continue
        parameters = component.get("parameters")
        return list(parameters) if isinstance(parameters, list) else []
    return []


def _expect(where: str, wanted: int, given: list[Any]) -> None:
    if len(given) != wanted:
        raise TemplateRefusal(
            132000, f"{where}: expected number of params ({wanted}) does not match received ({len(given)})"
        )


def check_send(catalogue: Sequence[Mapping[str, Any]], template: Mapping[str, Any]) -> None:
    """Raise TemplateRefusal when Meta would refuse this `template` object of a send."""
    name = template.get("name")
    language = template.get("language")
    code = language.get("code") if isinstance(language, Mapping) else None
    match = next((t for t in catalogue if t.get("name") == name and t.get("language") == code), None)
    if match is None or match.get("status") in ("PENDING", "REJECTED", "IN_APPEAL", "PENDING_DELETION", "DELETED"):
        raise TemplateRefusal(132001, f"template name ({name}) does not exist in {code}")
    if match.get("status") == "PAUSED":
        raise TemplateRefusal(132015, f"template ({name}) is paused")
    if match.get("status") == "DISABLED":
        raise TemplateRefusal(132016, f"template ({name}) is disabled")
    components = template.get("components")
    given = components if isinstance(components, list) else []
    button_index = 0
    for component in match.get("components", []):
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            media = component.get("format") in ("IMAGE", "VIDEO", "DOCUMENT", "LOCATION")
            _expect("header", 1 if media else len(_placeholders(component.get("text"))), _given(given, "header"))
        elif kind == "BODY":
            _expect("body", len(_placeholders(component.get("text"))), _given(given, "body"))
        elif kind == "BUTTONS":
            for button in component.get("buttons", []):
                index = str(button_index)
                button_index += 1
                if button.get("type") == "URL" and _placeholders(button.get("url")):
                    _expect(f"button {index}", 1, _given(given, "button", index))
                elif button.get("type") == "COPY_CODE":
                    _expect(f"button {index}", 1, _given(given, "button", index))
