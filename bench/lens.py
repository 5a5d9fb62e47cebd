"""Logit lens (and a DLA agreement check): attnscope vs TransformerLens 4.3.0 on a GPT-2-shaped random model.

Model: GPT-2 shape (12 layers, d = 768, 12 heads, vocabulary 50,257), random weights (seed 0), float32, 2 threads.
Work: the lens over every layer and every position of one sequence of L tokens, top-5.

* attnscope: ``ats.logit_lens(model, ids, top_k=5)`` on the HF model as loaded (SDPA): 12 layers x L positions, plus
  the final row per position for the KL; also entropy, target probability and rank.
* TransformerLens 4.3.0: ``transformer_lens.tools.analysis.logit_lens(bridge, tokens, positions=None, top_k=5)`` on
  ``TransformerBridge.boot_transformers(folder, hf_model=deepcopy(model), tokenizer=tok)`` (the raw bridge; it
  switches the model it is given to eager attention), which reads the 13-entry accumulated residual stack
  (embeddings, resid_pre of layers 1..11, the final resid_post) in row chunks of 64 through the full vocabulary
  (logits, top-k, entropy), and checks the readout against the model's logits.

Equality first (L = 64, both sides on eager attention so the forward itself is the same): entries 1..12 of
TransformerLens' stack are attnscope's layers 0..11; top-5 ids must be identical and probabilities within 1e-5.
DLA: attnscope's per-head and per-component terms on a logit difference vs TransformerLens in compatibility mode
(``enable_compatibility_mode()``: LayerNorm folded, writing weights and the unembedding centred, value biases folded)
``tools.analysis.direct_logit_attribution(..., unit="head"/"component")`` on the same prompt.

Timing: alternating, warm-up 1, ``--repeats`` (5) at each length; memory: each side in a fresh subprocess, peak RSS
above the RSS right after the model (and, for TransformerLens, the bridge) is loaded.
Run: ``python -m bench.lens`` (needs bench/.env: ``bash bench/setup_env.sh``; the script re-runs itself there).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench._harness import PeakRSS, alternate, peak_in_subprocess, write

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ENV_PY = HERE / ".env" / "bin" / "python"
SHAPE = dict(n_layer=12, n_embd=768, n_head=12, vocab=50257)
TOP_K = 5


def build(n_layer: int, n_embd: int, n_head: int, vocab: int, attn: str = "sdpa"):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_positions=1024,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # GPT-2 initialises biases to 0 and LN gains to 1: randomise them so that folding and
        for name, p in model.named_parameters():  # centring (TransformerLens' compatibility mode) have work to do
            if name.endswith(".bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.set_attn_implementation(attn)
    return model


def tokenizer(vocab: int):
    """A word-level fast tokenizer ``t0 .. t{vocab-1}`` (TransformerLens wants one; no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0", pad_token="t0", bos_token="t0",
                                   eos_token="t0")


def tokens(length: int) -> torch.Tensor:
    return torch.randint(1, SHAPE["vocab"], (1, length), generator=torch.Generator().manual_seed(length))


def model_with_bridge(shape: dict):
    """The GPT-2-shaped model of ``shape`` (``n_layer``, ``n_embd``, ``n_head``, ``vocab``), its tokenizer and a
    TransformerLens bridge on a copy of it."""
    model = build(**shape)
    tok = tokenizer(shape["vocab"])
    with tempfile.TemporaryDirectory() as folder:
        bridge = bridge_of(model, tok, folder)
    return model, tok, bridge


def bridge_of(model, tok, folder: str):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)  # TransformerLens re-creates it from its name_or_path
    bridge = TransformerBridge.boot_transformers(folder, hf_model=copy.deepcopy(model), tokenizer=tok)
    return bridge.eval()


def attnscope_lens(model, ids):
    import attnscope as ats

    return ats.logit_lens(model, ids, top_k=TOP_K)


def tl_lens(bridge, ids, return_type: str = "logits"):
    from transformer_lens.tools.analysis import logit_lens

    with torch.no_grad():
        return logit_lens(bridge, ids, positions=None, top_k=TOP_K, return_type=return_type)


def agreement(model, bridge, tok) -> dict:
    """Lens: top-5 ids and probabilities; DLA: per-head and per-component terms on a logit difference."""
    import attnscope as ats
    from attnscope.attribution.targets import Contrast

    ids = tokens(64)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    ours = ats.logit_lens(eager, ids, top_k=TOP_K)
    theirs = tl_lens(bridge, ids, return_type="probs")
    t_ids = theirs.readout.top_ids[1:]  # [12, batch, pos, k]
    t_probs = theirs.readout.values[1:]
    ids_equal = bool(torch.equal(ours.topk_ids, t_ids))
    lens_diff = float((ours.topk_probs - t_probs.float()).abs().max())
    assert ids_equal, "top-5 ids differ between attnscope and TransformerLens"
    assert lens_diff <= 1e-5, f"lens probabilities differ by {lens_diff}"

    from transformer_lens.tools.analysis import direct_logit_attribution

    a, b = int(ids[0, 5]), int(ids[0, 9])  # two tokens of the prompt: a logit difference
    dla = ats.direct_logit_attribution(eager, ids, target=Contrast(a, b))
    compat = copy.deepcopy(bridge)
    compat.enable_compatibility_mode(disable_warnings=True)
    with torch.no_grad():
        heads = direct_logit_attribution(compat, ids, answer_tokens=a, incorrect_tokens=b, unit="head")
        comps = direct_logit_attribution(compat, ids, answer_tokens=a, incorrect_tokens=b, unit="component")
    tl_heads = {lab: float(v) for lab, v in zip(heads.labels, heads.attribution.reshape(len(heads.labels), -1)[:, 0])}
    tl_comps = {lab: float(v) for lab, v in zip(comps.labels, comps.attribution.reshape(len(comps.labels), -1)[:, 0])}
    ours_heads = {f"L{layer}H{h}": float(dla.by_head[layer, h]) for layer in range(SHAPE["n_layer"])
                  for h in range(SHAPE["n_head"])}
    head_diff = max(abs(ours_heads[k] - tl_heads[k]) for k in ours_heads)
    # TransformerLens folds the value biases (after folding ln_1's beta into them) into the output bias: its head h
    # is ours minus g . (b_V,h W_O,h), with g the frozen final norm's pullback of the unembedding direction
    # (attention rows sum to 1, so a constant part of v passes whole).
    shares = value_bias_shares(eager, ids, a, b)
    folded_diff = max(abs(ours_heads[k] - shares[k] - tl_heads[k]) for k in ours_heads)
    # TransformerLens folds the value biases into the output bias (b_O' = b_O + sum_h b_V,h W_O,h), so its
    # "{l}_attn_out" equals attnscope's heads plus L{l}.attn_bias; its "embed" + "pos_embed" is our embed,
    # and its MLP outputs carry the centred writing weights' shift, which the centring of the final LN removes.
    c = dla.contributions
    pairs = [(float(c["embed"]), tl_comps["embed"] + tl_comps.get("pos_embed", 0.0))]
    for layer in range(SHAPE["n_layer"]):
        pairs.append((float(dla.attn[0, layer]), tl_comps[f"{layer}_attn_out"]))
        pairs.append((float(c[f"L{layer}.mlp"]), tl_comps[f"{layer}_mlp_out"]))
    comp_diff = max(abs(x - y) for x, y in pairs)
    scale = max(abs(x) for x, _ in pairs)
    return {"lens_top5_ids_equal": ids_equal, "lens_max_abs_prob_diff": lens_diff,
            "dla_logit_diff": float(dla.logit[0]), "dla_delta": float(dla.delta[0]),
            "dla_max_abs_head_diff_unfolded": head_diff, "dla_max_abs_head_diff": folded_diff, "dla_max_abs_component_diff": comp_diff, "dla_component_scale": scale,
            "dla_value_bias_note": "TransformerLens folds ln_1's beta into b_V and b_V into b_O, so its head h is "
                                   "attnscope's minus g . ((beta_1 W_V + b_V)_h W_O,h); compared after that "
                                   "correction (the uncorrected difference is kept too); per-layer attention totals "
                                   "need no correction"}


def value_bias_shares(model, ids, a: int, b: int) -> dict[str, float]:
    """Each head's ``g . ((beta_1 W_V + b_V)_h W_O,h)`` at the last position (g: frozen ln_f pullback of
    W_U[a] - W_U[b])."""
    from attnscope.adapters.unembedding import freeze_norm

    seen = {}

    def keep(module, args, output):
        seen["x"] = (output[0] if isinstance(output, tuple) else output)[:, -1]

    handle = model.transformer.h[-1].register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        handle.remove()
    w = model.lm_head.weight.detach().double()
    g = freeze_norm(model.transformer.ln_f, seen["x"]).pullback(w[a] - w[b])[0]
    d, n_head = SHAPE["n_embd"], SHAPE["n_head"]
    hd = d // n_head
    out = {}
    for layer, block in enumerate(model.transformer.h):
        # v = ln_1(x) W_V + b_V with ln_1(x) = n(x) gamma + beta: the constant part is beta W_V + b_V
        # (TransformerLens folds beta into b_V before it folds b_V into b_O). Conv1D columns are [q | k | v].
        w_qkv, b_qkv = block.attn.c_attn.weight.detach().double(), block.attn.c_attn.bias.detach().double()
        b_v = block.ln_1.bias.detach().double() @ w_qkv[:, 2 * d:] + b_qkv[2 * d:]
        w_o = block.attn.c_proj.weight.detach().double()  # [heads*head_dim, d]
        for h in range(n_head):
            out[f"L{layer}H{h}"] = float(b_v[h * hd:(h + 1) * hd] @ w_o[h * hd:(h + 1) * hd] @ g)
    return out


def measure(variant: str, length: int) -> None:
    """In a fresh process: peak RSS above the post-load baseline for one lens call."""
    torch.set_num_threads(2)
    model = build(**SHAPE)
    ids = tokens(length)
    import attnscope  # noqa: F401  (loaded before the baseline)

    if variant == "transformer_lens":
        tok = tokenizer(SHAPE["vocab"])
        with tempfile.TemporaryDirectory() as folder:
            bridge = bridge_of(model, tok, folder)
            del model
            with PeakRSS() as peak:
                out = tl_lens(bridge, ids)
                del out
    else:
        attnscope_lens(model, tokens(8))  # first-call imports outside the measurement, as for the peer's boot
        with PeakRSS() as peak:
            out = attnscope_lens(model, ids)
            del out
    print(json.dumps({"peak_above_baseline_mib": peak.above_baseline, "baseline_mib": peak.baseline}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", nargs=2, metavar=("VARIANT", "LENGTH"))
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != (HERE / ".env").resolve():
        subprocess.run(["bash", str(HERE / "setup_env.sh")], check=True)
        os.execv(str(ENV_PY), [str(ENV_PY), "-m", "bench.lens", *sys.argv[1:]])
    if args.measure:
        measure(args.measure[0], int(args.measure[1]))
        return
    torch.set_num_threads(2)
    import transformer_lens  # noqa: F401
    import importlib.metadata as md

    model = build(**SHAPE)
    tok = tokenizer(SHAPE["vocab"])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        bridge = bridge_of(model, tok, folder)
        agree = agreement(model, bridge, tok)
        print(json.dumps(agree), file=sys.stderr)
        for length in args.lengths:
            ids = tokens(length)
            times = alternate({"transformer_lens": lambda: tl_lens(bridge, ids),
                               "attnscope": lambda: attnscope_lens(model, ids)}, repeats=args.repeats, warmup=1)
            mem = {v: peak_in_subprocess("bench.lens", [v, str(length)])["peak_above_baseline_mib"]
                   for v in ("transformer_lens", "attnscope")}
            row = {"length": length, "times": times,
                   "time_ratio": times["attnscope"]["median_s"] / times["transformer_lens"]["median_s"],
                   "peak_mib": mem, "mem_ratio": mem["attnscope"] / mem["transformer_lens"]}
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    payload = {"model": "gpt2-shaped random (12 x 768, 12 heads, vocab 50257)", "agreement": agree,
               "settings": {"repeats": args.repeats, "warmup": 1, "dtype": "float32", "threads": 2, "top_k": TOP_K,
                            "peer": "transformer_lens.tools.analysis.logit_lens(bridge, tokens, positions=None, top_k=5)"
                                    " on TransformerBridge.boot_transformers(folder, hf_model=deepcopy(model)), raw "
                                    "bridge (eager attention, its default chunk_size=64)",
                            "transformer_lens": md.version("transformer-lens")},
               "results": rows}
    lines = [
        f"Agreement (L = 64, eager attention both sides): top-5 ids identical: {agree['lens_top5_ids_equal']}, "
        f"max |Δp| {agree['lens_max_abs_prob_diff']:.1e}; DLA on a logit difference vs TransformerLens "
        f"compatibility mode: per-layer components max |Δ| {agree['dla_max_abs_component_diff']:.1e} (scale "
        f"{agree['dla_component_scale']:.2f}), per-head max |Δ| {agree['dla_max_abs_head_diff']:.1e} after moving "
        f"each head's value-bias share to the output bias as TransformerLens folds it ({agree['dla_max_abs_head_diff_unfolded']:.1e} "
        "before).",
        "",
        "| L | TransformerLens s (median [min, max]) | attnscope s | time ratio (goal ≤ 1.0) | peak MiB: TL | attnscope "
        "| mem ratio (goal ≤ 0.2) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t, a = row["times"]["transformer_lens"], row["times"]["attnscope"]
        lines.append(f"| {row['length']} | {t['median_s']:.2f} [{t['min_s']:.2f}, {t['max_s']:.2f}] | "
                     f"{a['median_s']:.2f} [{a['min_s']:.2f}, {a['max_s']:.2f}] | {row['time_ratio']:.2f} | "
                     f"{row['peak_mib']['transformer_lens']:.0f} | {row['peak_mib']['attnscope']:.0f} | "
                     f"{row['mem_ratio']:.3f} |")
    write("lens", payload, "\n".join(lines))


if __name__ == "__main__":
    main()
