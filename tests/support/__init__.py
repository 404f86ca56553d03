"""Test support code shared across test levels (fixtures registered as pytest plugins from tests/conftest.py)."""
