"""The capture engine's editor interface: code that changes an attention call's inputs or output.

Consumers (:mod:`attnscope.capturing.consumers`) only read; an editor may replace what one head computes. Pass
editors to ``ats.capture(model, record=False, editors=[...])``; the engine calls, for every attention call of a
captured layer:

* ``editor.edit_inputs(layer, stack, query, key, value)`` before the attention is computed: ``query``
  ``[batch, q_heads, q_len, head_dim]`` (after position embeddings), ``key``/``value`` ``[batch, kv_heads, k_len,
  head_dim]`` (with the cache's earlier positions during generation); it returns the three tensors to use;
* ``editor.edit_output(layer, stack, output, q_start)`` after it: ``output`` ``[batch, q_len, q_heads, head_dim]`` is
  each head's output before the output projection, ``q_start`` the absolute position of its first query row; it
  returns the tensor the layer continues with.

This is how ``ats.intervene`` ablates heads and how path patching freezes heads and patches one head's query, key or
value. Editors run in the order given; the returned tensors keep their autograd graph.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["AttentionEditor", "check_editor"]


@runtime_checkable
class AttentionEditor(Protocol):
    """What ``ats.capture(model, editors=[...])`` accepts (see the module docstring)."""

    def edit_inputs(self, layer: int, stack: str, query: Tensor, key: Tensor,
                    value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The query, key and value the attention call uses (return them unchanged to edit nothing)."""

    def edit_output(self, layer: int, stack: str, output: Tensor, q_start: int) -> Tensor:
        """The heads' output the layer continues with (return ``output`` to edit nothing)."""


def check_editor(editor: Any) -> Any:
    """``editor`` if it has both methods of :class:`AttentionEditor`; else a TypeError naming what is missing."""
    missing = [m for m in ("edit_inputs", "edit_output") if not callable(getattr(editor, m, None))]
    if missing:
        raise TypeError(f"a capture editor needs {' and '.join(missing)} (see attnscope.capturing.AttentionEditor), "
                        f"got {type(editor).__name__} without")
    return editor
