"""Encoder-decoder generation attribution (saliency of every target token): attnscope vs a per-token Captum loop.

    python -m bench.seq2seq                         # both shapes, T = 8, 16, 32
    python -m bench.seq2seq --models tiny --lengths 8 --repeats 2      # a quick look

attnscope: ``attribute_generation(model, None, source, continuation=target, method="saliency")``: one
teacher-forced pass, the backward of every step vmapped (``is_grads_batched``), columns source | start | target.
Peer: Captum 0.9 ``Saliency`` (abs=True) on the encoder's and the decoder's embedding outputs, one call per target
token on the decoder prefix that predicts it (what inseq does for encoder-decoder models: a Captum attribution per
step), value = the probability of the token. Nothing to tune: one forward and one backward per token.

Models: Marian-shaped, random weights (seed 0), no downloads: "tiny" (d_model 64, 2 + 2 layers, 4 heads, vocab
1000) and "base" (opus-mt's shape: d_model 512, 6 + 6 layers, 8 heads, FFN 2048; vocab 8000 instead of 58101 to
keep the runs short). Source of 16 random ids, target of T random ids. Agreement (max |diff| / max |peer| <= 1e-4)
is asserted before timing; 1 torch thread; variants alternate (``_harness.alternate``), 5 repeats after a warm-up.
Writes bench/results/seq2seq.json and bench/results/seq2seq.md.
"""

from __future__ import annotations

import argparse

import torch

from ._harness import alternate, write

SOURCE_LEN = 16
REL_TOL = 1e-4
SHAPES = {
    "tiny": dict(vocab_size=1000, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                 decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128),
    "base": dict(vocab_size=8000, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048),
}


def build(name: str):
    from transformers import MarianConfig, MarianMTModel

    torch.manual_seed(0)
    cfg = MarianConfig(**SHAPES[name], max_position_embeddings=128, pad_token_id=0, eos_token_id=1,
                       decoder_start_token_id=0)
    return MarianMTModel(cfg).eval()


def captum_loop(model, source: list[int], target: list[int]) -> torch.Tensor:
    """``[T, S + 1 + T]``: row t is |d p(target_t) / d embeddings| summed over hidden, on the prefix that predicts it."""
    from captum.attr import Saliency

    start = model.generation_config.decoder_start_token_id
    ids = torch.tensor([source])
    scale = model.get_encoder().embed_scale  # Marian scales the encoder's embedding output outside the layer
    enc = model.get_encoder().embed_tokens(ids).detach()
    full = torch.tensor([[start, *target]])
    rows = []
    for t, token in enumerate(target):
        dec = model.get_decoder().embed_tokens(full[:, : t + 1]).detach()

        def prob(e, d, token=token):
            logits = model(inputs_embeds=e * scale, decoder_inputs_embeds=d).logits
            return logits[:, -1].softmax(-1)[:, token]

        g_enc, g_dec = Saliency(prob).attribute((enc, dec), abs=True)
        row = torch.zeros(len(source) + 1 + len(target))
        row[: len(source)] = g_enc[0].sum(-1)
        row[len(source) : len(source) + t + 1] = g_dec[0].sum(-1)
        rows.append(row)
    return torch.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=list(SHAPES))
    parser.add_argument("--lengths", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import attnscope as ats

    rows = []
    for name in args.models:
        model = build(name)
        for T in args.lengths:
            g = torch.Generator().manual_seed(T)
            source = torch.randint(2, SHAPES[name]["vocab_size"], (SOURCE_LEN,), generator=g).tolist()
            target = torch.randint(2, SHAPES[name]["vocab_size"], (T,), generator=g).tolist()

            def ours():
                return ats.attribute_generation(model, None, source, continuation=target, method="saliency",
                                                progress=False)

            res, ref = ours(), captum_loop(model, source, target)
            err = float((res.matrix - ref).abs().max() / ref.abs().max())
            assert err <= REL_TOL, f"{name} T={T}: attnscope differs from the Captum loop by {err:.2e} (relative)"
            times = alternate({"attnscope": ours, "captum_loop": lambda: captum_loop(model, source, target)},
                              repeats=args.repeats)
            row = {"model": name, "T": T, "source": SOURCE_LEN, "engine": res.engine, "max_rel_diff": err,
                   "times": times,
                   "speedup": times["captum_loop"]["median_s"] / times["attnscope"]["median_s"]}
            print(f"[{name} T={T}] attnscope {times['attnscope']['median_s']:.3f}s, captum loop "
                  f"{times['captum_loop']['median_s']:.3f}s, {row['speedup']:.1f}x, rel diff {err:.1e}")
            rows.append(row)
    lines = ["| model | T | attnscope median (s) | Captum per-token loop median (s) | speedup | engine | max rel diff |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        a, c = r["times"]["attnscope"], r["times"]["captum_loop"]
        lines.append(f"| {r['model']} | {r['T']} | {a['median_s']:.3f} ({a['min_s']:.3f}-{a['max_s']:.3f}) | "
                     f"{c['median_s']:.3f} ({c['min_s']:.3f}-{c['max_s']:.3f}) | {r['speedup']:.1f}x | {r['engine']} | "
                     f"{r['max_rel_diff']:.1e} |")
    table = ("Encoder-decoder generation attribution, saliency of every target token (source 16 tokens), Marian "
             "shapes with random weights, 1 thread, median of " + str(args.repeats) + " alternating runs "
             "(min-max).\n\n" + "\n".join(lines))
    write("seq2seq", {"rows": rows, "settings": {"source_len": SOURCE_LEN, "shapes": SHAPES}}, table)


if __name__ == "__main__":
    main()
