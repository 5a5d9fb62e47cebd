"""pytest plugin (entry point ``pytest11``): attnscope's fixtures. Imports no torch when pytest loads it."""

from __future__ import annotations

import pytest


@pytest.fixture
def attnscope_offline(monkeypatch):
    """No hub access inside the test: models must come from folders, objects or PyPI packages."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
