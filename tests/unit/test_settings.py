"""Settings into the environment of another process: everything arrives, secrets too."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from dnc.settings import (
    ApiKey,
    ApiSettings,
    ExpirySettings,
    PrivacySettings,
    Settings,
    TopicLayout,
    Topics,
    ViewSettings,
)


def test_a_process_given_as_env_builds_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        app_id="t1",
        topics=Topics(changes="t1.changes", allowed_template="t1.allowed.{channel}"),
        topic_layout=TopicLayout(list_partitions=3),
        privacy=PrivacySettings(enabled=True, keys=["k" * 40, "é" * 40]),
        expiry=ExpirySettings(ttl_days={"CHANNEL_SIGNAL": 90}),
        api=ApiSettings(
            keys=[ApiKey(name="ops", sha256="ab" * 32, accounts=["acme"])],
            unsubscribe_keys=["u" * 40],
        ),
        channel_signals={"twilio": ["21610"]},
        metrics_port=9100,
    )
    env = settings.as_env()
    assert all(name.startswith("DNC_") for name in env)
    assert "**" not in env["DNC_PRIVACY__KEYS"] + env["DNC_API__UNSUBSCRIBE_KEYS"]
    for name in [n for n in os.environ if n.startswith("DNC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = Settings()
    assert again == settings
    assert [k.get_secret_value() for k in again.privacy.keys] == ["k" * 40, "é" * 40]
    assert [k.get_secret_value() for k in again.api.unsubscribe_keys] == ["u" * 40]


def test_the_view_backend_is_chosen_once_and_postgres_needs_its_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [k for k in os.environ if k.startswith("DNC_VIEW__")]:
        monkeypatch.delenv(name)
    assert Settings().view.backend == "sqlite"  # the embedded default
    monkeypatch.setenv("DNC_VIEW__BACKEND", "postgres")
    with pytest.raises(ValueError, match="needs DNC_VIEW__POSTGRES_URL"):
        Settings()
    monkeypatch.setenv("DNC_VIEW__POSTGRES_URL", "postgresql://u:secret@db:5432/dnc")
    settings = Settings()
    assert settings.view.backend == "postgres"
    assert "secret" not in repr(settings)  # the URL may hold a password
    assert settings.as_env()["DNC_VIEW__POSTGRES_URL"] == "postgresql://u:secret@db:5432/dnc"
    monkeypatch.setenv("DNC_VIEW__BACKEND", "mysql")
    with pytest.raises(ValueError, match="mysql"):
        Settings()


def test_dnc_dev_runs_the_view_writer_with_the_postgres_view_only() -> None:
    from dnc.cli import ROLES, default_roles

    assert "viewwriter" not in default_roles(Settings(view=ViewSettings()))
    postgres = ViewSettings(backend="postgres", postgres_url=SecretStr("postgresql://db/dnc"))
    assert default_roles(Settings(view=postgres)) == list(ROLES)
    assert default_roles(Settings(view=postgres))[-1] == "api"  # the view's writer first
