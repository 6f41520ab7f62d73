"""Shared fixtures. Keep fixtures in their own modules and import them here."""

from __future__ import annotations

import os

import pytest

from tests.support.gitrepo import GitRepo


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session parses policy files into its own cache, never the user's."""
    monkeypatch.setenv("MINBUMP_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "minbump-cache"))


@pytest.fixture(autouse=True)
def _no_service_env(monkeypatch):
    """The service's settings come from each test, never from the shell that runs the suite."""
    for name in ("REDIS_URL", "APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "GITHUB_TOKEN", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


def pytest_configure(config):
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")

# --- webhook service (issue 4): the shared fake GitHub fixture ---
from tests.support.fakegithub import fake_github  # noqa: E402,F401
