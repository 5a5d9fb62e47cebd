"""Two threads on one model (issue #22): attnscope's calls are serialised per model (attnscope.model_lock), so every
result equals the single-threaded one and the model's state is as it was; ops stay bit-identical across threads."""

from __future__ import annotations

import threading

import torch

import attnscope as ats
from attnscope import ops

from attribution_models import tiny_llama, word_tokenizer

ROUNDS = 20


def model_state(model) -> dict:
    """Everything an attnscope scope installs and must restore."""
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    configs = {id(m.config): m.config for m in model.modules() if hasattr(m, "config")}
    return {
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "attn": sorted(str(c.__dict__.get("_attn_implementation_internal")) for c in configs.values()),
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(m._backward_pre_hooks)) for m in model.modules()],
        "generate": "generate" in model.__dict__,
        "registered": sorted(k for k in (*AttentionInterface._global_mapping, *AttentionMaskInterface._global_mapping)
                             if k.startswith("attnscope")),
    }


def _run(work, errors: list) -> threading.Thread:
    def body():
        try:
            work()
        except BaseException as err:  # noqa: BLE001  (reported by the test)
            errors.append(err)

    return threading.Thread(target=body)


def test_two_threads_capture_and_attribute_one_model():
    model, tok = tiny_llama(), word_tokenizer(bert_style=False)
    for p in list(model.parameters())[::3]:
        p.requires_grad_(False)  # a mix of flags: each must come back as it was
    inputs = [tok([t], return_tensors="pt") for t in ("the cat sat on the mat", "a dog ran far away from home")]
    want_capture = [ats.capture_attention(model, x).weights for x in inputs]
    want_attr = [ats.attribute(model, x, method="integrated_gradients", n_steps=4, tokenizer=tok).scores
                 for x in inputs]
    before = model_state(model)
    errors: list = []

    def rounds(which: int):
        def work():
            for r in range(ROUNDS):
                x = (which + r) % 2
                got = ats.capture_attention(model, inputs[x]).weights
                assert torch.equal(got, want_capture[x]), f"thread {which} round {r}: capture differs"
                got = ats.attribute(model, inputs[x], method="integrated_gradients", n_steps=4, tokenizer=tok).scores
                assert torch.equal(got, want_attr[x]), f"thread {which} round {r}: attribution differs"
        return work

    threads = [_run(rounds(i), errors) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert all(not t.is_alive() for t in threads)
    assert model_state(model) == before


def test_generation_attribution_beside_a_capture_scope_in_another_thread():
    model, tok = tiny_llama(), word_tokenizer(bert_style=False)
    prompt = "the cat sat"
    want = ats.attribute_generation(model, tok, prompt, max_new_tokens=3, method="saliency", progress=False).matrix
    want_w = ats.capture_attention(model, tok(["the dog"], return_tensors="pt")).weights
    before = model_state(model)
    errors: list = []

    def generation():
        for _ in range(3):
            got = ats.attribute_generation(model, tok, prompt, max_new_tokens=3, method="saliency", progress=False)
            assert torch.equal(got.matrix, want)

    def scoped():
        for _ in range(3):
            with ats.capture(model) as cap:
                model(**tok(["the dog"], return_tensors="pt"))
            assert torch.equal(cap.result.weights, want_w)

    threads = [_run(generation, errors), _run(scoped, errors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert model_state(model) == before


def test_a_plain_forward_in_another_thread_is_not_recorded_by_a_capture_scope():
    model, tok = tiny_llama(), word_tokenizer(bert_style=False)
    mine, other = tok(["the cat sat"], return_tensors="pt"), tok(["a dog ran far away"], return_tensors="pt")
    with torch.no_grad():
        plain = model(**other).logits
    want = ats.capture_attention(model, mine).weights
    want_resid = ats.capture_activations(model, mine, sites=("resid_post",)).get("resid_post")
    outputs: list = []
    with ats.capture(model, activations=("resid_post",)) as cap:
        with torch.no_grad():
            model(**mine)
            t = threading.Thread(target=lambda: outputs.append(model(**other).logits))
            t.start()
            t.join()
    assert cap.calls == model.config.num_hidden_layers  # this thread's forward only
    assert torch.equal(cap.result.weights, want)
    # this thread's one forward (shape [layer, 1, 3, hidden]); 1e-6: the capture computes attention as P.V
    torch.testing.assert_close(cap.activations.get("resid_post"), want_resid, rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs[0], plain, rtol=0, atol=1e-6)


def test_ops_from_several_threads_are_bit_identical():
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(2, 4, 33, 16, generator=g), torch.randn(2, 2, 33, 16, generator=g)) for _ in range(4)]
    want = [ops.attention_probs(q, k, scale=0.25, is_causal=True, query_chunk=8) for q, k in cases]
    got: dict[tuple[int, int], torch.Tensor] = {}
    errors: list = []

    def work(i: int):
        def body():
            for r in range(10):
                q, k = cases[(i + r) % 4]
                got[(i, r)] = ops.attention_probs(q, k, scale=0.25, is_causal=True, query_chunk=8)
        return body

    threads = [_run(work(i), errors) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert all(torch.equal(got[(i, r)], want[(i + r) % 4]) for i in range(4) for r in range(10))
