"""attnscope.testing helpers pass on real cases and fail, with the measured values, on cases built to fail."""

from __future__ import annotations

import pytest

from attnscope.testing import assert_attention_matches_eager

from tiny_models import batch, build


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_attention_matches_eager_passes(kind):
    assert_attention_matches_eager(build(kind), batch(kind, "left"))


def test_attention_matches_eager_fails_with_values():
    with pytest.raises(AssertionError, match=r"differs from eager by more than 1e-12: layer 0: \d\.\d\de-\d+, layer 1"):
        assert_attention_matches_eager(build("qwen2"), batch("qwen2", "right"), atol=1e-12)
