"""The value differentiated at each generation step: the generated token's probability, log-probability, logit, or
a contrast with another token."""

from __future__ import annotations

import torch
from torch import Tensor

from ..targets import token_id

STEP_TARGETS = ("prob", "logprob", "logit")

__all__ = ["STEP_TARGETS", "StepTarget"]


class StepTarget:
    """The differentiated value of each step: ``prob``, ``logprob``, ``logit`` of the generated token, or
    ``("contrast", alternative)``: ``logprob(generated) - logprob(alternative)`` (equal to the logit difference)."""

    def __init__(self, target: object, tokenizer: object, n_steps: int, vocab: int) -> None:
        self.alternative: Tensor | None = None
        if isinstance(target, str) and target in STEP_TARGETS:
            self.kind = target
        elif isinstance(target, tuple) and len(target) == 2 and target[0] == "contrast":
            self.kind = "contrast"
            alt = target[1]
            alts = list(alt) if isinstance(alt, (list, tuple)) else [alt] * n_steps
            if len(alts) != n_steps:
                raise ValueError(f"contrast gives {len(alts)} alternative tokens for {n_steps} generated tokens; "
                                 "give one token, or one per generated token")
            ids = []
            for a in alts:
                a = token_id(a, tokenizer, "contrast alternative")
                if not 0 <= a < vocab:
                    raise ValueError(f"contrast alternative token {a} out of range: the vocabulary has {vocab} tokens")
                ids.append(a)
            self.alternative = torch.tensor(ids, dtype=torch.long)
        else:
            raise ValueError(f"unknown target {target!r}: use 'prob', 'logprob', 'logit' or ('contrast', token)")

    def describe(self) -> str:
        return self.kind

    def __call__(self, logits: Tensor, steps: Tensor, tokens: Tensor) -> Tensor:
        """Values ``[...]`` from ``logits [..., vocab]`` of steps ``steps`` whose generated tokens are ``tokens``."""
        logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        if self.kind == "logit":
            return picked
        if self.kind == "contrast":
            alt = self.alternative.to(logits.device)[steps]
            return picked - logits.gather(-1, alt.unsqueeze(-1)).squeeze(-1)
        lse = torch.logsumexp(logits, dim=-1)
        return picked - lse if self.kind == "logprob" else torch.exp(picked - lse)
