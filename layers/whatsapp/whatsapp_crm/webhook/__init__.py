"""Meta webhook payloads: models (models.py) and the walk over entries/changes (parse.py)."""
