"""The one way an adapter gets its boto3 client: built on first use, once, even under concurrent first use.

boto3 clients are thread-safe once built, but building one from the default session is not (the session's
credential and loader state is shared), and the webhook writes from a thread pool: so every build in the
process goes through one lock, and each holder keeps the client it built.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config

_BUILD_LOCK = threading.Lock()


class LazyClient:
    """One boto3 client for one service, built on first `get()` (tests and benchmarks hand one in)."""

    __slots__ = ("_client", "_config", "_service")

    def __init__(self, service: str, config: Config, client: Any | None = None) -> None:
        self._service = service
        self._config = config
        self._client = client

    def get(self) -> Any:
        client = self._client
        if client is None:
            with _BUILD_LOCK:
                if self._client is None:
                    import boto3

                    self._client = boto3.client(self._service, config=self._config)
                client = self._client
        return client
