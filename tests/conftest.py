"""Shared pytest fixtures.

Keep one section per area; each fixture's docstring says why it exists.
"""

from __future__ import annotations

import pytest

from fake_api import FakeMessagesAPI  # tests/ is on sys.path (rootdir conftest, no __init__)

# --- LLM: a local Messages API server ---------------------------------------


@pytest.fixture
def fake_api():
    """A fresh local Messages API server per test, so request logs, caches and
    injected faults never leak between tests."""
    with FakeMessagesAPI() as api:
        yield api


@pytest.fixture
def llm_env(monkeypatch, fake_api):
    """Point the anthropic SDK (via its own environment variables) at `fake_api`
    with a dummy key, so code that builds `LlmClient()` without arguments talks
    to the local server and never to the real API."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    return fake_api
