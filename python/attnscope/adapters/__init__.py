"""What differs between model families: where the attention modules are and how they group into stacks."""

from .attention_modules import AttentionSlot, find_attention_modules

__all__ = ["AttentionSlot", "find_attention_modules"]
