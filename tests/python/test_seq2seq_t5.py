"""Encoder-decoder end to end on a tiny T5 (relative position bias in every stack, one shared embedding module called twice): the shared tests of seq2seq_checks.py (capture labels and tables
against eager attention, attribute and attribute_generation against Captum on both embeddings, views in Chromium)."""

from __future__ import annotations

import pytest
from seq2seq_checks import *  # noqa: F403  (the shared tests, collected here for this family)


@pytest.fixture
def kind():
    return "t5"


def test_testing_helpers_accept_seq2seq_outputs(kind):
    check_testing_helpers_accept_seq2seq(kind)  # noqa: F405
