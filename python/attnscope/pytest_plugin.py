"""pytest plugin (entry point ``pytest11``): attnscope's fixtures. Imports no torch when pytest loads it."""

from __future__ import annotations

import pytest


@pytest.fixture
def attnscope_offline(monkeypatch):
    """No hub access inside the test: models must come from folders, objects or PyPI packages."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def attnscope_organism():
    """The shipped induction organism: ``(model, tokenizer)`` (layer 1 head 0 is its induction head)."""
    from attnscope.organisms import load

    return load("induction")
