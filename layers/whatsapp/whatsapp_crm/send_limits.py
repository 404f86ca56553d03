"""Meta's limits on the messages this service sends, as numbers only (no pydantic), so the outbound model
(send_models.py), the reply planner (intent/reply_plans.py) and the meeting-slot titles (schedule.py) check the
same ones without the planner and the stream's event mapper importing the model."""

from __future__ import annotations

MAX_TEXT_BODY = 4096
MAX_INTERACTIVE_BODY = 1024  # a reply-button message's body
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_ID = 256
MAX_BUTTON_TITLE = 20
MAX_LIST_ROWS = 10  # across all sections of a list message
# The meeting reply's booking link (MeetingBookingUrl). The reply is a reply-button message whose body is the
# offer's own text (about 110 characters in English) plus this link, so a longer link would make every
# meeting reply unsendable; the template and the responder's settings refuse one instead.
MAX_BOOKING_URL = 800
