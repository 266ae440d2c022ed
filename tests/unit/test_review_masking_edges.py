"""Log masking (`logs.mask_secrets`) at its edges: a URL password holding '/', ',' or '@' (which
SQLAlchemy takes as they are), a secret under a quoted key (a dict's repr, a JSON document), an
HTTP Authorization credential. Each case leaked the secret, whole or in part, before."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sink.logs import mask_secrets


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pa/ss@host/db", "postgresql://u:***@host/db"),
        ("postgresql+psycopg://u:pa,ss@host:5432/db", "postgresql+psycopg://u:***@host:5432/db"),
        ("mysql+pymysql://root:p@ss@host/db", "mysql+pymysql://root:***@host/db"),
    ],
)
def test_a_url_password_with_a_separator_is_masked_whole(url: str, masked: str) -> None:
    assert sa.engine.make_url(url).password is not None  # SQLAlchemy connects with such URLs
    assert mask_secrets(f"could not connect to {url}: timeout") == f"could not connect to {masked}: timeout"


def test_each_url_of_a_list_keeps_its_host() -> None:
    masked = mask_secrets("registries http://u:p1@h1:8081,http://v:p2@h2:8081 down")
    assert masked == "registries http://u:***@h1:8081,http://v:***@h2:8081 down"


@pytest.mark.parametrize(
    "text",
    [
        "{'sasl.password': 's3cr3t', 'acks': 'all'}",
        '{"sasl.password": "s3cr3t", "acks": "all"}',
        '{"ssl.key.passphrase": "s3cr3t"}',
        "sasl.oauthbearer.client.secret='s3cr3t'",
    ],
)
def test_a_secret_under_a_quoted_key_is_masked(text: str) -> None:
    masked = mask_secrets(text)
    assert "s3cr3t" not in masked
    assert "all" in masked or "acks" not in text, "other values stay"


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOi.s3cr3t",
        'headers={"Authorization": "Basic s3cr3t=="}',
        "proxy-authorization=Digest s3cr3t",
        "refused the bearer s3cr3t",
    ],
)
def test_an_http_credential_is_masked(text: str) -> None:
    assert "s3cr3t" not in mask_secrets(text)


@pytest.mark.parametrize(
    "text",
    [
        "connect to postgresql://host:5432/db failed",
        "see https://example.com/a:b@c",
        "the token expired at offset 42",
        "user@example.com: passed",
    ],
)
def test_text_without_a_secret_is_left_as_it_is(text: str) -> None:
    assert mask_secrets(text) == text
