"""Auto-reply brain: what a lead's message asks for (engine) and what to answer (reply_plans). Pure, no I/O."""

from whatsapp_crm.intent.engine import (
    PRECEDENCE,
    Intent,
    IntentEngine,
    IntentResult,
    Language,
    detect_intent,
    detect_language,
)
from whatsapp_crm.intent.reply_plans import (
    ReplyPlan,
    SlotButton,
    plan_reply,
    plan_slot_confirmation,
    plan_slot_reoffer,
    validate_intent_data,
)

__all__ = [
    "PRECEDENCE",
    "Intent",
    "IntentEngine",
    "IntentResult",
    "Language",
    "ReplyPlan",
    "SlotButton",
    "detect_intent",
    "detect_language",
    "plan_reply",
    "plan_slot_confirmation",
    "plan_slot_reoffer",
    "validate_intent_data",
]
