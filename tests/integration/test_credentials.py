"""Deployed functions read their WhatsApp credentials from the JSON secret (Secrets Manager on moto's
server), cached for SECRET_MAX_AGE_SECONDS; the WHATSAPP_* env vars override single keys (local runs)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from aws_lambda_powertools.utilities import parameters

from conftest import AwsStack
from whatsapp_crm.credentials import load_credentials
from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.settings import SecretSettings

SECRET = {"access_token": "EAAG-from-the-secret", "app_secret": "app-secret-from-the-secret", "verify_token": "vt-1"}


@pytest.fixture
def secret_id(aws: AwsStack) -> str:
    parameters.clear_caches()  # Powertools caches per process; each test starts cold, as a new Lambda would
    name = f"whatsapp-{uuid.uuid4().hex[:8]}"
    aws.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(SECRET))
    return name


def test_the_secret_provides_every_credential(secret_id: str) -> None:
    credentials = load_credentials(SecretSettings(whatsapp_secret_id=secret_id))
    assert credentials.access_token.get_secret_value() == SECRET["access_token"]
    assert credentials.app_secret.get_secret_value() == SECRET["app_secret"]
    assert credentials.verify_token.get_secret_value() == SECRET["verify_token"]
    assert SECRET["access_token"] not in repr(credentials)  # SecretStr: never printed by accident


def test_an_env_override_wins_for_its_key_only(secret_id: str) -> None:
    settings = SecretSettings(whatsapp_secret_id=secret_id, whatsapp_verify_token="local-verify-token")
    credentials = load_credentials(settings)
    assert credentials.verify_token.get_secret_value() == "local-verify-token"
    assert credentials.app_secret.get_secret_value() == SECRET["app_secret"]


def test_a_rotated_secret_is_picked_up_after_the_cache_age(aws: AwsStack, secret_id: str) -> None:
    # Given a function that has read the secret once (cache age shortened from the default 300 s)
    cached = SecretSettings(whatsapp_secret_id=secret_id, secret_max_age_seconds=1)
    assert load_credentials(cached).access_token.get_secret_value() == SECRET["access_token"]
    # When an operator rotates the token
    rotated = {**SECRET, "access_token": "EAAG-rotated"}
    aws.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString=json.dumps(rotated))
    # Then a warm function keeps the cached value (no Secrets Manager call per invocation) until the age passes
    assert load_credentials(cached).access_token.get_secret_value() == SECRET["access_token"]
    time.sleep(1.2)
    assert load_credentials(cached).access_token.get_secret_value() == "EAAG-rotated"


@pytest.mark.parametrize("secret_string", ["not json", '["a list"]'])
def test_a_secret_that_is_not_a_json_object_is_a_configuration_error(aws: AwsStack, secret_string: str) -> None:
    parameters.clear_caches()
    name = f"whatsapp-{uuid.uuid4().hex[:8]}"
    aws.client("secretsmanager").create_secret(Name=name, SecretString=secret_string)
    with pytest.raises(ConfigurationError, match="not a JSON object"):
        load_credentials(SecretSettings(whatsapp_secret_id=name))


def test_no_secret_and_no_overrides_names_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="access_token, app_secret, verify_token"):
        load_credentials(SecretSettings())


def test_the_access_token_comes_from_its_own_secret_when_the_function_has_one(aws: AwsStack, secret_id: str) -> None:
    # Given the split of issue 10: the token in a secret of its own (the first one may still hold an old token)
    token_id = f"whatsapp-token-{uuid.uuid4().hex[:8]}"
    aws.client("secretsmanager").create_secret(Name=token_id, SecretString=json.dumps({"access_token": "EAAG-own"}))
    settings = SecretSettings(whatsapp_secret_id=secret_id, whatsapp_access_token_secret_id=token_id)
    credentials = load_credentials(settings)
    assert credentials.access_token.get_secret_value() == "EAAG-own"
    assert credentials.app_secret.get_secret_value() == SECRET["app_secret"]
