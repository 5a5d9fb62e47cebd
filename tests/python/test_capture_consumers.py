"""The capture engine's public consumer interface: toy consumers plugged through it, checked against Hugging Face's
eager ``output_attentions`` (not our code); events, inputs and errors; the scope left clean after a consumer raises."""

from __future__ import annotations

import pytest
import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

import attnscope as ats
from attnscope import ops
from attnscope.capturing import AttentionEvent, CaptureConsumer

from tiny_models import batch, build


def eager_attentions(kind, inputs):
    with torch.no_grad():
        out = build(kind, attn="eager")(**inputs, output_attentions=True)
    return [a.float() for a in out.attentions]


def first_token_share(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[batch, heads]: mean over the valid query rows of the probability on each example's first valid token."""
    first = valid.long().argmax(-1)  # [batch]
    on_first = probs[torch.arange(probs.shape[0]), :, :, first]  # [batch, heads, q]
    rows = valid[:, None, :].to(probs.dtype)
    return (on_first * rows).sum(-1) / rows.sum(-1)


class FirstTokenShare:
    """Per layer and head, the mean attention to the first token, recomputed with attnscope.ops from q, k, spec."""

    needs_probs = False

    def __init__(self) -> None:
        self.per_layer: dict[int, torch.Tensor] = {}
        self.saw_probs: list[object] = []

    def on_attention(self, event: AttentionEvent) -> None:
        self.saw_probs.append(event.probs)
        probs = ops.attention_probs(event.query, event.key, spec=event.spec)
        self.per_layer[event.layer] = first_token_share(probs, event.inputs["attention_mask"].bool())


class ProbsRecorder:
    """Keeps the probabilities the engine hands to consumers that ask for them, and each event."""

    needs_probs = True

    def __init__(self) -> None:
        self.events: list[AttentionEvent] = []

    def on_attention(self, event: AttentionEvent) -> None:
        assert not torch.is_grad_enabled()
        self.events.append(event)


@pytest.mark.parametrize(
    "kind,padding",
    [("llama", "left"), ("llama", None), ("qwen2", "left"), ("mistral", None), ("gemma2", None), ("gpt_oss", "left"),
     ("bert", "right"), ("gpt2", "right")],
)
def test_toy_consumer_matches_eager(kind, padding):
    inputs = batch(kind, padding)
    model = build(kind)
    share, recorder = FirstTokenShare(), ProbsRecorder()
    with torch.no_grad(), ats.capture(model, consumers=[share]) as cap:
        cap.add_consumer(recorder)
        model(**inputs)
    want = eager_attentions(kind, inputs)
    valid = inputs["attention_mask"].bool()
    assert sorted(share.per_layer) == list(range(len(want)))
    for layer, eager in enumerate(want):
        assert (share.per_layer[layer] - first_token_share(eager, valid)).abs().max().item() <= 1e-5
    # The probabilities handed to needs_probs consumers are eager's on every real query row ...
    assert [e.layer for e in recorder.events] == list(range(len(want)))
    rows = valid[:, None, :, None]
    for event, eager in zip(recorder.events, want):
        assert event.probs.shape == eager.shape
        assert ((event.probs - eager) * rows).abs().max().item() <= 1e-5
        assert event.stack == "main" and event.q_len == event.k_len == inputs["input_ids"].shape[1]
        assert torch.equal(event.inputs["input_ids"], inputs["input_ids"])
    # ... and consumers that did not ask get none (none were built for them).
    assert share.saw_probs == [None] * len(want)


def test_record_false_keeps_nothing_and_leaves_outputs_bit_identical():
    model, inputs = build("llama"), batch("llama", "left")
    with torch.no_grad():
        plain = model(**inputs).logits
    share = FirstTokenShare()
    with torch.no_grad(), ats.capture(model, consumers=[share], record=False) as cap:
        got = model(**inputs).logits
    assert torch.equal(got, plain)  # the model's own SDPA computed the output
    assert cap.results == [] and cap.calls == 2 and sorted(share.per_layer) == [0, 1]
    with pytest.raises(RuntimeError, match=r"capture\(record=False\) keeps no results: its 1 consumer\(s\) received"):
        cap.result


def test_consumer_sees_generation_steps_and_positional_inputs():
    model = build("llama")
    prompt = batch("llama", None, length=6)["input_ids"]
    recorder = ProbsRecorder()
    with torch.no_grad(), ats.capture(model, layers=[1], consumers=[recorder], record=False):
        out = model.generate(prompt, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert [e.layer for e in recorder.events] == [1, 1, 1]
    assert [(e.q_len, e.k_len) for e in recorder.events] == [(6, 6), (1, 7), (1, 8)]
    assert [e.inputs["input_ids"].shape[1] for e in recorder.events] == [6, 1, 1]
    # The last step's row is eager attention's row for that position over the full sequence.
    with torch.no_grad():
        eager = build("llama", attn="eager")(out[:, :8], output_attentions=True).attentions[1].float()
    assert (recorder.events[-1].probs[0, :, 0] - eager[0, :, 7]).abs().max().item() <= 1e-5
    # A plain positional call names its input too.
    positional = ProbsRecorder()
    with torch.no_grad(), ats.capture(model, consumers=[positional], record=False):
        model(prompt)
    assert torch.equal(positional.events[0].inputs["input_ids"], prompt)


class Boom(Exception):
    pass


class Raiser:
    needs_probs = False

    def on_attention(self, event: AttentionEvent) -> None:
        raise Boom(f"layer {event.layer}")


def test_consumer_exception_leaves_the_model_clean():
    model, inputs = build("qwen2"), batch("qwen2", "left")
    before = model.config._attn_implementation
    names = set(ALL_ATTENTION_FUNCTIONS)
    with torch.no_grad():
        plain = model(**inputs).logits
    with pytest.raises(Boom, match="layer 0"), torch.no_grad(), ats.capture(model, consumers=[Raiser()]):
        model(**inputs)
    assert model.config._attn_implementation == before
    assert set(ALL_ATTENTION_FUNCTIONS) == names
    assert len(model._forward_pre_hooks) == 0 and "generate" not in model.__dict__
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, plain)


def test_protocol_is_runtime_checkable():
    assert isinstance(FirstTokenShare(), CaptureConsumer)
    assert not isinstance(object(), CaptureConsumer)


class NoHook:
    needs_probs = False


class NoDeclaration:
    def on_attention(self, event):
        pass


class StringDeclaration(NoDeclaration):
    needs_probs = "yes"


def test_bad_consumers_name_what_is_wrong():
    model = build("llama")
    with pytest.raises(TypeError, match="needs an on_attention\\(event\\) method, got NoHook without one"):
        ats.capture(model, consumers=[NoHook()])
    with pytest.raises(TypeError, match="must declare needs_probs = True or False, got needs_probs=None on "
                                        "NoDeclaration"):
        ats.capture(model, consumers=[NoDeclaration()])
    with pytest.raises(TypeError, match="got needs_probs='yes' on StringDeclaration"):
        ats.capture(model).add_consumer(StringDeclaration())
    with pytest.raises(TypeError, match="consumers must be a list of capture consumers, got FirstTokenShare"):
        ats.capture(model, consumers=FirstTokenShare())
    with pytest.raises(TypeError, match="record must be True or False, got 0"):
        ats.capture(model, record=0)
    with pytest.raises(ValueError, match="grad=True needs record=True"):
        ats.capture(model, grad=True, record=False)


def test_docs_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "capture.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text[text.index("## Consumers"):], flags=re.S)[0]
    scope = {"model": build("llama"), "inputs": batch("llama", None)}
    exec(code, scope)
    want = eager_attentions("llama", scope["inputs"])
    assert sorted(scope["share"].per_layer) == [0, 1]
    for layer, eager in enumerate(want):
        assert (scope["share"].per_layer[layer] - eager[..., 0].mean(-1)).abs().max().item() <= 1e-5
