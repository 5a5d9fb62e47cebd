"""Robustness metrics with Captum's definitions, perturbing the input embeddings.

* ``sensitivity_max`` (Yeh et al. 2019; Captum's ``sensitivity_max``): ``max_k ||e(x + d_k) - e(x)|| / ||e(x)||``
  with ``d_k`` uniform in ``[-radius, radius]`` on every embedding coordinate, drawn as Captum's
  ``default_perturb_func`` draws them (one ``uniform_`` over the ``[batch * n, seq, hidden]`` block, examples
  repeated with ``repeat_interleave``). ``e`` re-runs the attribution method with the embedding layer's output
  shifted by ``d_k`` (a scoped forward hook), with the target fixed to what it was at ``x``.
* ``infidelity`` (Captum's ``infidelity``, normalize=False): ``mean_k (I_k . a - (f(x) - f(x - I_k)))^2``. At
  ``level="embedding"`` ``I_k`` is Gaussian noise on every embedding coordinate and ``a`` the attribution per
  coordinate (``raw``); at ``level="token"`` (any method) ``I_k`` scales each token's embedding by ``eps_j``
  (Gaussian per token), so ``I_k . a = sum_j eps_j * score_j``, the first-order change the token scores predict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from ..attribution.targets import Target
from ..inputs import ModelInputs

__all__ = ["LEVELS", "FixedRow", "infidelity", "sensitivity_draws", "sensitivity_max", "shifted_embeddings"]

LEVELS = ("token", "embedding")


class FixedRow(Target):
    """A target already bound on the evaluated inputs, read for example ``row`` whatever rows it is given (the
    explained class or token stays the one of the unperturbed input)."""

    def __init__(self, bound: Target, row: int) -> None:
        self.bound, self.row, self.name = bound, row, bound.name

    def __call__(self, outputs, rows, attention_mask):
        return self.bound(outputs, torch.full_like(rows, self.row), attention_mask)

    def reads_last_position(self):
        return self.bound.reads_last_position()

    def describe(self):
        return self.bound.describe()


@contextlib.contextmanager
def shifted_embeddings(model: nn.Module, delta: Tensor) -> Iterator[None]:
    """Add ``delta`` ``[seq, hidden]`` to the input embeddings' output for the scope (a suffix of it when a forward
    runs only the last positions, as prefix KV reuse does); the hook is removed on exit, also on exceptions."""
    module = model.get_input_embeddings()

    def hook(_module, _args, output):
        n = output.shape[-2]
        return output + delta[-n:].to(output.device, output.dtype)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def sensitivity_draws(batch: int, n: int, shape: tuple[int, ...], radius: float, seed: int) -> Tensor:
    """``[batch * n, *shape]`` uniform draws in ``[-radius, radius]`` in Captum's order (example-major)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.empty((batch * n, *shape)).uniform_(-radius, radius, generator=generator)


def sensitivity_max(model: nn.Module, explain: Callable[[int], Tensor], inputs: ModelInputs, *, n: int,
                    radius: float, seed: int) -> Tensor:
    """``[batch]``: ``explain(i)`` gives example ``i``'s token scores ``[seq]`` under the current model."""
    hidden = model.get_input_embeddings().weight.shape[1]
    draws = sensitivity_draws(inputs.batch, n, (inputs.seq, hidden), radius, seed)
    out = torch.zeros(inputs.batch, dtype=torch.float64)
    for i in range(inputs.batch):
        base = explain(i).double()
        norm = float(base.norm()) or 1.0
        worst = 0.0
        for k in range(n):
            with shifted_embeddings(model, draws[i * n + k]):
                moved = explain(i).double()
            worst = max(worst, float((moved - base).norm()) / norm)
        out[i] = worst
    return out


def infidelity(model: nn.Module, inputs: ModelInputs, target: Target, attributions: Tensor, *, level: str, n: int,
               noise_std: float, seed: int, normalize: bool = False) -> Tensor:
    """``[batch]`` infidelity of ``attributions`` (``[batch, seq]`` token scores for ``level="token"``,
    ``[batch, seq, hidden]`` for ``"embedding"``); ``target`` is bound and gives the function's value per row."""
    embed = model.get_input_embeddings()
    generator = torch.Generator().manual_seed(seed)
    out = torch.zeros(inputs.batch, dtype=torch.float64)
    for i in range(inputs.batch):
        rows = torch.full((n,), i, dtype=torch.long, device=inputs.input_ids.device)
        kwargs = inputs.forward_kwargs(rows)
        ids = kwargs.pop("input_ids")
        valid = (kwargs["attention_mask"][0] != 0).cpu()
        with torch.no_grad():
            emb = embed(ids[:1]).double()  # [1, seq, hidden]
            if level == "token":
                eps = torch.randn((n, inputs.seq), generator=generator, dtype=torch.float64) * noise_std * valid
                perturbation = eps.unsqueeze(-1).to(emb.device) * emb
                dot = (eps.to(emb.device) * attributions[i].to(emb.device).double()).sum(-1)
            else:
                noise = torch.randn((n, *emb.shape[1:]), generator=generator, dtype=torch.float64) * noise_std
                perturbation = (noise * valid[None, :, None]).to(emb.device)
                dot = (perturbation * attributions[i].to(emb.device).double()).sum((-1, -2))
            dtype = embed.weight.dtype
            f_x = target(model(inputs_embeds=emb.to(dtype), **{k: v[:1] for k, v in kwargs.items()}),
                         rows[:1], kwargs["attention_mask"][:1]).double()
            f_p = target(model(inputs_embeds=(emb - perturbation).to(dtype), **kwargs), rows,
                         kwargs["attention_mask"]).double()
        diff = (f_x - f_p).cpu()
        dot = dot.cpu()
        if normalize:
            beta = (dot * diff).mean() / (dot * dot).mean().clamp_min(1e-300)
            dot = beta * dot
        out[i] = ((dot - diff) ** 2).mean()
    return out
