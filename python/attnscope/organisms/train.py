"""Train the model organisms shipped with attnscope: ``python -m attnscope.organisms.train induction``.

The ``induction`` organism is a 2-layer Llama-architecture causal LM (hidden 64, one 64-dimensional attention head
per layer, MLP 128) trained on sequences ``[<bos>, segment, segment]`` where ``segment`` is ``s`` distinct tokens
drawn at random from ``t0 .. t127`` (``s`` varies from 1 to 24 between batches; segments shorter than 4 tokens are
repeated until at least 8 tokens follow ``<bos>``). The first copy is unpredictable (chance is about 1/128); every
token of the second copy after its first is predictable, but only by induction: find the previous occurrence of the
current token and copy the token that followed it. The known mechanism is a previous-token head in layer 0 (each
position attends to the position before it) composed with an induction head in layer 1 (each position of the second
copy attends to the token after its earlier occurrence, at offset ``s - 1``).

Why one head per layer: with 2 or 4 heads per layer, training (same data, seed 0) found an equally accurate offset
variant instead -- layer-0 heads attending 2 and 3 positions back, and a layer-1 head attending to ``i - s + 3`` and
reading the token two back from there -- whose previous-token and induction scores stay below 0.1. A single layer-0
head cannot carry both the matching key and the copied token of an offset variant, which leaves the canonical circuit.

Deterministic seed, CPU, one thread (``--threads``); a few minutes. Retraining reproduces the accuracy and head scores
of the model card, not bitwise weights (thread scheduling changes float summation order). Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ..atomic_files import write_text

HERE = Path(__file__).resolve().parent
N_SEGMENT_TOKENS = 128
SPECIALS = ["<pad>", "<bos>", "<unk>"]  # ids 0, 1, 2; token tK has id K + 3
MIN_SEGMENT, MAX_SEGMENT = 1, 24
HEADS = 1
EVAL_SEGMENT = 16


def build_tokenizer():
    """A WordLevel tokenizer over ``<pad> <bos> <unk> t0 .. t127``: whitespace-split, ``<bos>`` prepended."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + [f"t{k}" for k in range(N_SEGMENT_TOKENS)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                       special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>",
                                   model_max_length=64)


def build_model(seed: int = 0, heads: int = HEADS):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(SPECIALS) + N_SEGMENT_TOKENS, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=heads,
                      head_dim=64 // heads, max_position_embeddings=64,
                      pad_token_id=0, bos_token_id=1, eos_token_id=None, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def sample(n: int, segment_len: int, generator: torch.Generator, copies: int = 2) -> torch.Tensor:
    """``[n, 1 + copies * segment_len]`` input ids: ``<bos>``, then ``segment_len`` distinct random tokens, repeated."""
    keys = torch.rand(n, N_SEGMENT_TOKENS, generator=generator)
    segment = keys.argsort(dim=1)[:, :segment_len] + len(SPECIALS)
    bos = torch.full((n, 1), SPECIALS.index("<bos>"), dtype=torch.long)
    return torch.cat([bos] + [segment] * copies, dim=1)


def training_copies(segment_len: int) -> int:
    """Short segments are repeated more than twice (at least 8 tokens after <bos>). A segment of 1 or 2 tokens
    leaves no room for induction through "the token k > 1 positions back" (that key would lie in the future), so
    these sequences reward the canonical previous-token head over offset variants."""
    return max(2, -(-8 // segment_len))


@torch.no_grad()
def accuracy(model, segment_len: int = EVAL_SEGMENT, n: int = 512, seed: int = 12345) -> dict[str, float]:
    """Greedy next-token accuracy on held-out sequences: positions 2..s of the second copy, and the first copy."""
    ids = sample(n, segment_len, torch.Generator().manual_seed(seed))
    pred = model(input_ids=ids).logits.argmax(-1)  # pred[:, t] predicts ids[:, t + 1]
    s = segment_len
    second = (pred[:, s + 1:2 * s] == ids[:, s + 2:2 * s + 1]).float().mean().item()  # copy-2 tokens 2..s
    first = (pred[:, 0:s] == ids[:, 1:s + 1]).float().mean().item()  # copy-1 tokens 1..s
    return {"second_copy_2_to_s": second, "first_copy": first}


def train_induction(out: Path, steps: int = 1500, batch: int = 64, lr: float = 3e-3, seed: int = 0,
                    threads: int = 1, heads: int = HEADS, min_segment: int = MIN_SEGMENT) -> dict:
    # One thread by default: the matrices are tiny, and on a shared machine a second OpenMP thread mostly spins.
    torch.set_num_threads(threads)
    model = build_model(seed, heads)
    tokenizer = build_tokenizer()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps))))
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        s = int(torch.randint(min_segment, MAX_SEGMENT + 1, (1,), generator=gen))
        ids = sample(batch, s, gen, training_copies(s))
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            model.eval()
            acc = accuracy(model, n=128)
            model.train()
            print(f"step {step:5d}  loss {loss.item():.3f}  second-copy acc {acc['second_copy_2_to_s']:.3f}  "
                  f"first-copy acc {acc['first_copy']:.3f}  {time.perf_counter() - start:.0f}s", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    acc = accuracy(model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    metrics = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "heads": heads, "min_segment": min_segment, "train_seconds": round(seconds, 1),
               "torch_threads": torch.get_num_threads(), **{f"accuracy_{k}": round(v, 4) for k, v in acc.items()}}
    metrics.update(_head_scores(model, tokenizer))
    write_text(out / "training.json", json.dumps(metrics, indent=2) + "\n")
    write_model_card(out, metrics)
    return metrics


def write_model_card(out: Path, metrics: dict) -> None:
    """README.md of the folder, from the metrics of ``training.json``."""
    (il, ih), (pl, ph) = metrics["best_induction_head"], metrics["best_prev_token_head"]
    write_text(out / "README.md", MODEL_CARD.format(**metrics, il=il, ih=ih, pl=pl, ph=ph))


MODEL_CARD = """---
library_name: transformers
tags: [attnscope, model-organism, induction-heads, interpretability]
---
# attnscope induction organism

A 2-layer `LlamaForCausalLM` (hidden 64, {heads} attention head(s) per layer, MLP 128, RoPE, vocabulary 131;
standard transformers code, no remote code) trained so that its mechanism is known. Load it with
`attnscope.organisms.load("induction")`, which returns `(model, tokenizer)`.

## Task
Sequences `[<bos>, segment, segment]`: `segment` is `s` distinct tokens drawn at random from `t0 .. t127`
(`s` from {min_segment} to 24 during training; segments shorter than 4 tokens are repeated until at least 8
tokens follow `<bos>`). The first copy is unpredictable (chance is about 1/128); every token of the second
copy after its first is predictable, and only by induction.

## Mechanism
Induction: a **previous-token head** in layer 0 lets each position carry the identity of the token before it; an
**induction head** in layer 1 attends from the current token `A` to the position right after `A`'s earlier
occurrence (offset `s - 1` back) and copies that token.

## Measured (held-out sequences, s = {eval_segment_len})
- next-token accuracy on tokens 2..s of the second copy: {accuracy_second_copy_2_to_s:.4f}
- next-token accuracy on the first copy (chance): {accuracy_first_copy:.4f}
- best induction head: layer {il}, head {ih}, induction score {induction_score:.3f}
- best previous-token head: layer {pl}, head {ph}, previous-token score {prev_token_score:.3f}

Scores are attnscope `head_stats` means (induction: attention from `i` to `i - s + 1` on the second copy;
previous-token: attention from `i` to `i - 1`). All per-head scores are in `training.json`.

## Training
`python -m attnscope.organisms.train induction`: AdamW (lr {lr}, betas 0.9/0.98, weight decay 0.01, warm-up 100
steps, cosine to 10 %), {steps} steps of batch {batch}, seed {seed}, CPU, {torch_threads} thread(s),
{train_seconds:.0f} s on the machine that produced this folder. Retraining reproduces the accuracy and the head
scores, not bitwise weights.

## Tokenizer
WordLevel (tokenizers library) over `<pad>`=0, `<bos>`=1, `<unk>`=2, `t0`..`t127` = 3..130; whitespace-split;
`<bos>` is prepended to every text. Example: `"t0 t5"` -> `[1, 3, 8]`.
"""


def _head_scores(model, tokenizer) -> dict:
    from attnscope.analysis import head_stats

    hs = head_stats(model, tokenizer, induction=True, segment_len=EVAL_SEGMENT, n_sequences=256, seed=12345,
                    progress=False)
    (il, ih, iv), = hs.top("induction", 1)
    (pl, ph, pv), = hs.top("prev_token", 1)
    return {"eval_segment_len": EVAL_SEGMENT, "best_induction_head": [il, ih], "induction_score": round(iv, 4),
            "best_prev_token_head": [pl, ph], "prev_token_score": round(pv, 4),
            "induction_scores": [[round(x, 4) for x in row] for row in hs["induction"].tolist()],
            "prev_token_scores": [[round(x, 4) for x in row] for row in hs["prev_token"].tolist()]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m attnscope.organisms.train", description=__doc__.split("\n")[0])
    parser.add_argument("organism", choices=["induction"])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the shipped folder)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--heads", type=int, default=HEADS, help="attention heads per layer")
    parser.add_argument("--min-segment", type=int, default=MIN_SEGMENT)
    args = parser.parse_args(argv)
    out = args.out or HERE / args.organism
    metrics = train_induction(out, steps=args.steps, seed=args.seed, threads=args.threads,
                              heads=args.heads, min_segment=args.min_segment)
    print(json.dumps(metrics, indent=2))
    print(f"saved to {out}")


if __name__ == "__main__":
    main()
