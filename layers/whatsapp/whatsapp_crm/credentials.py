"""WhatsApp credentials: JSON secrets in Secrets Manager, read through Powertools Parameters' cache.

`WHATSAPP_SECRET_ID` holds `app_secret` and `verify_token` (what the public webhook needs);
`WHATSAPP_ACCESS_TOKEN_SECRET_ID` holds `access_token`, and only the functions that call the Graph API have
it and may read it (Secrets Manager grants whole secrets, not keys). A function without the token secret
takes `access_token` from the first secret if it is there (stacks deployed before the split). For local runs
and tests the env vars WHATSAPP_ACCESS_TOKEN / WHATSAPP_APP_SECRET / WHATSAPP_VERIFY_TOKEN override the
matching key when set. Values are SecretStr so they never print into a log line by accident.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.settings import SecretSettings

_KEYS = ("access_token", "app_secret", "verify_token")


class WhatsAppCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    access_token: SecretStr = SecretStr("")
    app_secret: SecretStr = SecretStr("")
    verify_token: SecretStr = SecretStr("")


def _overrides(settings: SecretSettings) -> dict[str, str]:
    candidates = {
        "access_token": settings.whatsapp_access_token,
        "app_secret": settings.whatsapp_app_secret,
        "verify_token": settings.whatsapp_verify_token,
    }
    return {key: value for key, value in candidates.items() if value}


def _use_the_default_boto3_session() -> None:
    """Powertools' own secrets provider makes a boto3 Session of its own, and a second Session loads botocore's
    endpoint and configuration data all over again: about as much cold start as `import boto3` itself
    (bench/bench_coldstart.py). Its client from the default session (the one the store's clients use) costs
    a few milliseconds. Registered as Powertools' default provider, so `parameters.clear_caches()` still
    clears its cache."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    if "secrets" not in DEFAULT_PROVIDERS:
        import boto3

        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=boto3.client("secretsmanager"))


def _fetch_secret(settings: SecretSettings, secret_id: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    _use_the_default_boto3_session()
    try:
        value = parameters.get_secret(secret_id, transform="json", max_age=settings.secret_max_age_seconds)
    except parameters.exceptions.TransformParameterError:
        raise ConfigurationError("the WhatsApp secret is not a JSON object") from None
    if not isinstance(value, dict):
        raise ConfigurationError("the WhatsApp secret is not a JSON object")
    return value


def load_credentials(settings: SecretSettings) -> WhatsAppCredentials:
    """Credentials from env overrides, then the (cached) secret. Raises ConfigurationError if unusable."""
    values: dict[str, Any] = _overrides(settings)
    if "access_token" not in values and settings.whatsapp_access_token_secret_id:
        token = _fetch_secret(settings, settings.whatsapp_access_token_secret_id).get("access_token", "")
        values["access_token"] = token
    if len(values) < len(_KEYS):
        if not settings.whatsapp_secret_id:
            missing = sorted(set(_KEYS) - set(values))
            raise ConfigurationError(f"no WHATSAPP_SECRET_ID and no override for: {', '.join(missing)}")
        secret = _fetch_secret(settings, settings.whatsapp_secret_id)
        values = {key: secret.get(key, "") for key in _KEYS} | values
    return WhatsAppCredentials.model_validate({key: str(values.get(key) or "") for key in _KEYS})
