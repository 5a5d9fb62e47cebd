"""Encoder-decoder end to end on a tiny BART (learned positions, its own embedding modules per stack): the shared tests of seq2seq_checks.py (capture labels and tables
against eager attention, attribute and attribute_generation against Captum on both embeddings, views in Chromium)."""

from __future__ import annotations

import pytest
from seq2seq_checks import *  # noqa: F403  (the shared tests, collected here for this family)


@pytest.fixture
def kind():
    return "bart_lm"
