"""Shared WhatsApp layer: Graph client, webhook signature and models, conversation store, intent logic.

Modules here are imported by every function. Keep imports light: the webhook's cold start pays for
everything imported at module level, so heavy or rarely used dependencies (requests, phonenumbers)
are only imported by the modules that need them.
"""
