"""The embedding spaces: nearest tokens by cosine, a 2-D projection of chosen tokens, and the unembedding of any
residual-space vector."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..results.embeddings import EmbeddingProjection, TokenNeighbors

SPACES: tuple[str, ...] = ("input", "output")
PROJECTIONS: tuple[str, ...] = ("pca",)


def _check_k(k: Any, limit: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return min(k, limit)


class Embeddings:
    """A model's input embedding matrix and (when it has an LM head) its unembedding matrix, with a tokenizer.

    Attributes:
        input: ``[vocab, hidden]`` word embeddings (``model.get_input_embeddings().weight``).
        output: ``[vocab, hidden]`` unembedding rows (``model.get_output_embeddings().weight``), or None for a model
            without an LM head (e.g. ``BertModel``).
        output_bias: ``[vocab]`` bias of the LM head, or None.
    """

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a Hugging Face model (torch.nn.Module), got {type(model).__name__}")
        if tokenizer is None or not hasattr(tokenizer, "convert_ids_to_tokens"):
            raise TypeError(f"tokenizer must be the model's Hugging Face tokenizer, got {type(tokenizer).__name__}")
        get_in = getattr(model, "get_input_embeddings", None)
        module = get_in() if callable(get_in) else None
        if not isinstance(getattr(module, "weight", None), Tensor):
            raise ValueError(f"{type(model).__name__} has no input embedding matrix (get_input_embeddings())")
        self.model = model
        self.tokenizer = tokenizer
        self.input = module.weight.detach()
        get_out = getattr(model, "get_output_embeddings", None)
        head = get_out() if callable(get_out) else None
        self.output = head.weight.detach() if isinstance(getattr(head, "weight", None), Tensor) else None
        bias = getattr(head, "bias", None)
        self.output_bias = bias.detach() if isinstance(bias, Tensor) else None
        self._vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
        self._unit: dict[str, Tensor] = {}

    # --- tokens ---------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.input.shape[0])

    def token_id(self, token: str | int) -> int:
        """The id of a vocabulary token (``"Ġcat"``), of a string that encodes to exactly one token (``" cat"``), or
        an id itself; ``ValueError`` otherwise."""
        n = self.vocab_size
        if isinstance(token, bool) or not isinstance(token, (str, int)):
            raise TypeError(f"a token must be a string or an integer id, got {type(token).__name__}")
        if isinstance(token, int):
            if not 0 <= token < n:
                raise ValueError(f"token id {token} out of range: the embedding matrix has {n} rows (0..{n - 1})")
            return token
        if token in self._vocab and self._vocab[token] < n:
            return int(self._vocab[token])
        ids = self.tokenizer(token, add_special_tokens=False)["input_ids"] if callable(self.tokenizer) else []
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if len(ids) == 1 and ids[0] < n and ids[0] != unk:  # an unknown word encodes to <unk>: not its token
            return int(ids[0])
        pieces = self.tokenizer.convert_ids_to_tokens(ids) if ids else []
        raise ValueError(f"token {token!r} is not in the vocabulary (it encodes to {len(ids)} tokens: {pieces}); "
                         "pass one vocabulary token (see tokenizer.get_vocab()) or a token id")

    def _ids(self, tokens: str | int | Sequence[str | int]) -> list[int]:
        if isinstance(tokens, (str, int)):
            tokens = [tokens]
        ids = [self.token_id(t) for t in tokens]
        if not ids:
            raise ValueError("tokens is empty: pass at least one token")
        return ids

    def _strings(self, ids: list[int]) -> list[str]:
        return [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)]

    def matrix(self, space: str) -> Tensor:
        """``[vocab, hidden]`` rows of ``space`` ("input" or "output")."""
        if space not in SPACES:
            raise ValueError(f"unknown space {space!r}: use one of {', '.join(map(repr, SPACES))}")
        if space == "output":
            if self.output is None:
                raise ValueError(f"{type(self.model).__name__} has no LM head (get_output_embeddings() is None), so "
                                 "there is no output space; use space='input' or load the model with its head")
            return self.output
        return self.input

    # --- the three questions --------------------------------------------------------------------------------
    def neighbors(self, token: str | int | Sequence[str | int], k: int = 10, space: str = "input") -> TokenNeighbors:
        """The ``k`` tokens whose rows of ``space`` have the largest cosine similarity to each query token's row
        (the query token itself left out).

        Returns:
            TokenNeighbors with ``ids``/``scores`` ``[query, k]`` (scores in float64, best first).
        """
        matrix = self.matrix(space)
        ids = self._ids(token)
        k = _check_k(k, self.vocab_size - 1)
        if space not in self._unit:  # row-normalised float64 copy, made once per space
            self._unit[space] = torch.nn.functional.normalize(matrix.double(), dim=-1)
        unit = self._unit[space]
        sims = unit[ids] @ unit.T  # [query, vocab]
        sims[torch.arange(len(ids)), torch.tensor(ids)] = -torch.inf
        scores, found = sims.topk(k, dim=-1)
        return TokenNeighbors(queries=self._strings(ids), query_ids=torch.tensor(ids), ids=found.cpu(),
                              scores=scores.cpu(), tokens=[self._strings(row) for row in found.tolist()], space=space,
                              metric="cosine")

    def unembed(self, vector: Tensor, k: int = 10) -> TokenNeighbors:
        """The top ``k`` tokens of residual-space ``vector`` ``[hidden]`` (or ``[n, hidden]``) by logit,
        ``vector @ W_U.T (+ b)``, with no final norm applied (apply the model's final norm first for a logit lens).

        Returns:
            TokenNeighbors with ``ids``/``scores`` (logits) ``[n, k]``; ``queries`` are ``"vector 0"``, ...
        """
        matrix = self.matrix("output")
        if not isinstance(vector, Tensor) or not vector.is_floating_point():
            raise TypeError(f"vector must be a floating tensor [hidden] or [n, hidden], got {type(vector).__name__}"
                            + (f" of dtype {vector.dtype}" if isinstance(vector, Tensor) else ""))
        v = vector.detach().to(matrix.device).double()
        v = v.unsqueeze(0) if v.dim() == 1 else v
        if v.dim() != 2 or v.shape[-1] != matrix.shape[1]:
            raise ValueError(f"vector must be [hidden={matrix.shape[1]}] or [n, {matrix.shape[1]}], got shape "
                             f"{tuple(vector.shape)}")
        k = _check_k(k, self.vocab_size)
        logits = v @ matrix.double().T
        if self.output_bias is not None:
            logits = logits + self.output_bias.double()
        scores, found = logits.topk(k, dim=-1)
        return TokenNeighbors(queries=[f"vector {i}" for i in range(v.shape[0])], query_ids=None, ids=found.cpu(),
                              scores=scores.cpu(), tokens=[self._strings(row) for row in found.tolist()],
                              space="output", metric="logit")

    def project(self, tokens: Sequence[str | int], method: str = "pca", space: str = "input") -> EmbeddingProjection:
        """A 2-D projection of the rows of ``tokens`` in ``space``: principal components of the centred rows.

        Returns:
            EmbeddingProjection with ``coords`` ``[n, 2]`` and ``explained`` (each component's share of variance).
        """
        if method not in PROJECTIONS:
            raise ValueError(f"unknown projection method {method!r}: use one of {', '.join(map(repr, PROJECTIONS))}")
        ids = self._ids(tokens)
        if len(ids) < 2:
            raise ValueError(f"a 2-D projection needs at least 2 tokens, got {len(ids)}")
        x = self.matrix(space)[ids].double()
        x = x - x.mean(dim=0, keepdim=True)
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        # Fix each component's sign (largest |loading| positive) so results are reproducible across LAPACKs.
        signs = torch.sign(vh[torch.arange(vh.shape[0]), vh.abs().argmax(dim=1)])
        signs[signs == 0] = 1
        u = u * signs
        coords = torch.zeros(len(ids), 2, dtype=torch.float64)
        m = min(2, s.numel())
        coords[:, :m] = (u[:, :m] * s[:m]).cpu()
        var = s.square()
        explained = torch.zeros(2, dtype=torch.float64)
        explained[:m] = (var[:m] / var.sum().clamp_min(torch.finfo(var.dtype).tiny)).cpu()
        return EmbeddingProjection(tokens=self._strings(ids), ids=torch.tensor(ids), coords=coords,
                                   explained=explained, space=space, method=method)

    def __repr__(self) -> str:
        out = tuple(self.output.shape) if self.output is not None else None
        return f"Embeddings(input={tuple(self.input.shape)}, output={out})"


def embeddings(model: nn.Module, tokenizer: Any) -> Embeddings:
    """The embedding spaces of ``model``: ``.neighbors(token, k, space)``, ``.project(tokens)``, ``.unembed(v, k)``."""
    return Embeddings(model, tokenizer)


__all__ = ["PROJECTIONS", "SPACES", "Embeddings", "embeddings"]
