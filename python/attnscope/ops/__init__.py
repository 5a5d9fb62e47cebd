"""The door to the C++ core, split by area: typed wrappers, fake (meta) kernels and autograd formulas.

Every tensor-in/tensor-out kernel is a ``torch.ops.attnscope`` op, so it works under autograd, ``torch.compile``
and ``torch.library.opcheck``; the linear solvers are pybind11 functions of the same extension. This module is
the index: it loads the extension (which defines the ops), imports the area modules (which register their fake
kernels and autograd formulas) and re-exports their public names, so ``attnscope.ops.X`` reaches every one.

========================  ===========================================================================
area module               ops
========================  ===========================================================================
``ops.attention``         attention_probs (+ autograd), attention_probs_reduced, attention_head_stats
``ops.analysis``          rollout, attention_flow
``ops.relevance``         attention_grad_relevance
``ops.quadrature``        quadrature_rule, composite_gauss_legendre, refine_segments
``ops.solvers``           weighted_least_squares, weighted_lasso (pybind11)
``ops.vocab``             vocab_projection (the logit lens' streaming readout)
``ops.topk``              topk_merge (neuron statistics' running top-k)
``ops.spec``              AttentionSpec: the attention arguments the attention ops share
========================  ===========================================================================

A new op adds its area module (or its wrapper to the area's module) and one import line below.
"""

from __future__ import annotations

from .._extension import _C  # first: defines the torch.ops.attnscope schemas the area modules register against
from .analysis import HEAD_REDUCE_CODES, attention_flow, rollout
from .attention import (
    HEAD_STAT_NAMES,
    HeadStatSums,
    ReducedAttention,
    attention_head_stats,
    attention_probs,
    attention_probs_reduced,
)
from .quadrature import QUADRATURE_RULES, composite_gauss_legendre, quadrature_rule, refine_segments
from .relevance import attention_grad_relevance
from .solvers import RankDeficientError, WlsSolution, weighted_lasso, weighted_least_squares
from .spec import AttentionSpec
from .topk import TopkMerge, empty_topk, topk_merge
from .vocab import VocabProjection, vocab_projection

__all__ = [
    "AttentionSpec",
    "HEAD_REDUCE_CODES",
    "HEAD_STAT_NAMES",
    "HeadStatSums",
    "QUADRATURE_RULES",
    "RankDeficientError",
    "ReducedAttention",
    "TopkMerge",
    "VocabProjection",
    "WlsSolution",
    "attention_flow",
    "attention_grad_relevance",
    "attention_head_stats",
    "attention_probs",
    "attention_probs_reduced",
    "composite_gauss_legendre",
    "empty_topk",
    "quadrature_rule",
    "refine_segments",
    "rollout",
    "topk_merge",
    "vocab_projection",
    "weighted_lasso",
    "weighted_least_squares",
]
