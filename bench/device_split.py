"""A model split with accelerate's device_map against the same model unsplit (bench/gpu_check.sh runs it with
``--devices cuda:0,cpu,disk``; the dry run with ``cpu,cpu,disk``): capture, attribution, generation attribution, the
logit lens and activations must agree. A tiny 3-layer Llama; the embedding, layer 0, the final norm and the head go
to the first device, layer 1 to the second, layer 2 to the third ("disk": offloaded to a temporary folder and
streamed in by accelerate's hooks). Prints the largest difference per feature and fails above 1e-4.

Run: ``python -m bench.device_split --devices cuda:0,cpu,disk``.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

import attnscope as ats

TOL = 1e-4


def build(folder: str) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(folder)


def load(folder: str, devices: list[str] | None, offload: str):
    from transformers import AutoModelForCausalLM

    if devices is None:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    else:
        first, second, third = devices
        device_map = {"model.embed_tokens": first, "model.rotary_emb": first, "model.layers.0": first,
                      "model.layers.1": second, "model.layers.2": third, "model.norm": first, "lm_head": first}
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, device_map=device_map,
                                                     offload_folder=offload)
    model.set_attn_implementation("eager")
    return model.eval()


def features(model) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 97, (2, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    gen = ats.attribute_generation(model, None, ids[0, :6], max_new_tokens=3, progress=False)
    return {
        "capture": ats.capture_attention(model, inputs).weights,
        "capture mean": ats.capture_attention(model, inputs, reduce="mean").weights,
        "saliency": ats.attribute(model, ids[:1], method="saliency").scores,
        "integrated gradients": ats.attribute(model, ids[:1], method="integrated_gradients").scores,
        "generation (saliency)": gen.matrix,
        "logit lens": ats.logit_lens(model, ids[:1], top_k=3).topk_probs,
        "resid_post": ats.capture_activations(model, ids[:1], sites=("resid_post",))["resid_post"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cpu,disk", help="three devices: first,second,third")
    args = parser.parse_args()
    devices = args.devices.split(",")
    if len(devices) != 3:
        parser.error(f"--devices needs three comma-separated devices, got {args.devices!r}")
    if any(d.startswith("cuda") for d in devices):
        torch.backends.cuda.matmul.allow_tf32 = False  # exact float32 products on the GPU side
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as offload:
        build(folder)
        want = features(load(folder, None, offload))
        split = load(folder, devices, offload)
        print(f"device map: {split.hf_device_map}")
        got = features(split)
    worst = 0.0
    for name, w in want.items():
        diff = (got[name].detach().cpu().double() - w.detach().double()).abs().max().item()
        worst = max(worst, diff)
        print(f"{name:24s} max |split - unsplit| = {diff:.2e}")
    if worst > TOL:
        raise SystemExit(f"split model differs from the unsplit model by {worst:.2e} > {TOL}")
    print(f"split {args.devices}: all features within {TOL}")


if __name__ == "__main__":
    main()
