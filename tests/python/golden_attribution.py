"""Golden attribution scores: every method of the catalog on the induction organism, MiniLM and tiny models, with
fixed seeds and several targets, recorded before the attribution layer was restructured (issue 13).

``python tests/python/golden_attribution.py`` records ``data/golden_attribution.safetensors`` with the installed
attnscope; ``test_golden_attribution.py`` recomputes every case and compares. Re-record only for an intended change
of scores, and say why in the commit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "golden_attribution.safetensors"
ORGANISM_TEXT = "t3 t17 t42 t9 t64 t3 t17 t42"  # the next token is t9 (induction)
MINILM_TEXTS = ["a cat sat on the mat", "dogs run"]


def _organism():
    import attnscope.organisms as organisms

    model, tok = organisms.load("induction")
    return model, tok, tok(ORGANISM_TEXT, return_tensors="pt")


def _minilm():
    from attribution_models import minilm

    model, tok = minilm()
    return model, tok, tok(MINILM_TEXTS, return_tensors="pt", padding=True)


def similarity_reference(text: str) -> torch.Tensor:
    """The mean-pooled MiniLM embedding of ``text`` (a tensor reference: a text reference makes the target run the
    model inside attention_x_gradient's capture, which main at the time of recording did not survive)."""
    from attribution_models import minilm

    model, tok = minilm()
    enc = tok([text], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return ((hidden * mask).sum(1) / mask.sum(1))[0]


def _gpt2():
    from attribution_models import tiny_gpt2, word_tokenizer

    tok = word_tokenizer(bert_style=False)
    enc = tok(["the cat sat on the mat", "a dog ran"], return_tensors="pt", padding=True)
    return tiny_gpt2(), tok, enc


def _bert():
    from attribution_models import tiny_bert, word_tokenizer

    tok = word_tokenizer()
    return tiny_bert(), tok, tok(["the cat sat on the mat", "a big red dog"], return_tensors="pt", padding=True)


MODELS: dict[str, Callable] = {"organism": _organism, "minilm": _minilm, "gpt2": _gpt2, "bert": _bert}

# (case name, model, attribute() keyword arguments)
ATTRIBUTE_CASES: list[tuple[str, str, dict]] = []


def _add(model: str, method: str, tag: str = "", **kw) -> None:
    ATTRIBUTE_CASES.append((f"{model}.{method}{'.' + tag if tag else ''}", model, {"method": method, **kw}))


_SEEDED = {"smoothgrad", "gradient_shap", "lime", "kernel_shap", "shapley_sampling"}
for _m in ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "gradient_shap",
           "attention_x_gradient", "occlusion", "lime", "kernel_shap", "shapley_sampling"):
    for _model in ("organism", "gpt2", "bert"):
        _add(_model, _m, **({"seed": 3} if _m in _SEEDED else {}))
    _add("minilm", _m, target=("similarity", "a dog sat"), **({"seed": 3} if _m in _SEEDED else {}))
# Other targets, options and integration rules.
_add("organism", "integrated_gradients", "token", target="t9", n_steps=16)
_add("organism", "integrated_gradients", "contrast", target=("contrast", "t9", "t3"), integration="riemann_trapezoid")
_add("organism", "integrated_gradients", "adaptive", integration="adaptive", n_steps=64, completeness_tol=0.001)
_add("organism", "saliency", "continuation", target="t9 t64")
_add("organism", "input_x_gradient", "layer", layer="model.layers.0")
_add("organism", "smoothgrad", "vargrad", nt_type="vargrad", stdevs=0.05, n_steps=6, seed=11)
_add("organism", "occlusion", "window", window=2, stride=1, target="t9")
_add("organism", "kernel_shap", "exact", mode="exact", seed=5)
_add("organism", "lime", "lasso", surrogate="lasso", alpha=0.001, n_samples=40, seed=7, distance="euclidean")
_add("organism", "shapley_sampling", "antithetic", antithetic=True, n_samples=4, seed=2)
_add("gpt2", "integrated_gradients", "riemann", integration="riemann_middle", n_steps=10, internal_batch_size=3)
_add("gpt2", "occlusion", "kv", kv_reuse=True, baselines="[UNK]")
_add("bert", "integrated_gradients", "class", target=2, baselines="pad")
_add("bert", "gradient_shap", "stdevs", stdevs=0.1, n_steps=5, seed=4)
_add("bert", "kernel_shap", "words", features="words", n_samples=30, seed=1)
# Captum's KernelShap scheme, the default before issue 25 (its values are the ones recorded for the default then).
for _model in ("organism", "gpt2", "bert"):
    _add(_model, "kernel_shap", "captum", estimator="captum", seed=3)
_add("minilm", "kernel_shap", "captum", estimator="captum", target=("similarity", "a dog sat"), seed=3)
_add("bert", "kernel_shap", "words_captum", estimator="captum", features="words", n_samples=30, seed=1)
_add("organism", "kernel_shap", "unbiased", estimator="unbiased", n_samples=40, seed=2)
_add("organism", "shapley_sampling", "tolerance", tolerance=0.05, seed=2)
_add("minilm", "integrated_gradients", "gl8", target=("similarity", "a dog sat"), n_steps=8)

# (case name, attribute_generation() keyword arguments) on the organism
GENERATION_CASES: list[tuple[str, dict]] = [
    ("generation.saliency", {"method": "saliency"}),
    ("generation.input_x_gradient.logprob", {"method": "input_x_gradient", "target": "logprob"}),
    ("generation.integrated_gradients", {"method": "integrated_gradients", "n_steps": 8}),
    ("generation.attention", {"method": "attention"}),
    ("generation.occlusion.logit", {"method": "occlusion", "target": "logit"}),
    ("generation.saliency.contrast", {"method": "saliency", "target": ("contrast", "t0")}),
    ("generation.saliency.expanded", {"method": "saliency", "engine": "expanded", "batch_size": 2}),
]
GENERATION_PROMPT = "t5 t8 t13 t21 t5 t8"


def _target(kw: dict) -> dict:
    from attnscope.attribution import Contrast, Similarity

    kw = dict(kw)
    t = kw.get("target")
    if isinstance(t, tuple) and t[0] == "similarity":
        kw["target"] = Similarity(similarity_reference(t[1]))
    elif isinstance(t, tuple) and t[0] == "contrast":
        kw["target"] = Contrast(t[1], t[2])
    return kw


def run_attribute(model_name: str, kw: dict, cache: dict) -> dict[str, torch.Tensor]:
    import attnscope as ats

    if model_name not in cache:
        cache[model_name] = MODELS[model_name]()
    model, tok, enc = cache[model_name]
    res = ats.attribute(model, enc, tokenizer=tok, **_target(kw))
    out = {"scores": res.scores, "raw": res.raw}
    for name in ("delta", "f_input", "f_baseline", "feature_scores", "intercept", "n_steps_used", "standard_errors"):
        value = getattr(res, name, None)
        if isinstance(value, torch.Tensor):
            out[name] = value
    return out


def run_generation(kw: dict, cache: dict) -> dict[str, torch.Tensor]:
    import attnscope as ats

    if "organism" not in cache:
        cache["organism"] = MODELS["organism"]()
    model, tok, _ = cache["organism"]
    res = ats.attribute_generation(model, tok, GENERATION_PROMPT, max_new_tokens=4, progress=False, **kw)
    return {"matrix": res.matrix, "step_scores": res.step_scores, "generated_ids": res.generated_ids}


def compute_all() -> dict[str, torch.Tensor]:
    cache: dict = {}
    flat = {}
    for name, model_name, kw in ATTRIBUTE_CASES:
        for key, value in run_attribute(model_name, kw, cache).items():
            flat[f"{name}/{key}"] = value.detach().cpu().contiguous()
    for name, kw in GENERATION_CASES:
        for key, value in run_generation(kw, cache).items():
            flat[f"{name}/{key}"] = value.detach().cpu().contiguous()
    return flat


if __name__ == "__main__":
    from safetensors.torch import save_file

    scores = compute_all()
    GOLDEN.parent.mkdir(exist_ok=True)
    save_file(scores, str(GOLDEN))
    print(f"recorded {len(scores)} tensors of {len(ATTRIBUTE_CASES) + len(GENERATION_CASES)} cases to {GOLDEN}")
