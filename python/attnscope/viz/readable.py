"""Token pieces as people read them: ``Ġcat`` → `` cat``, ``▁cat`` → `` cat``, ``Ċ`` → ``↵``.

Tokenizers mark whitespace inside their pieces: byte-level BPE (GPT-2, Llama 3, Qwen2) maps every byte to a
printable character (space ``Ġ``, newline ``Ċ``, tab ``ĉ``), SentencePiece writes a space as ``▁`` and unknown
bytes as ``<0x0A>``. Views show the text instead; WordPiece's ``##ing`` stays in token mode (it says "continues the
word before") and is joined in word mode. Newlines and tabs become visible marks (``↵``, ``⇥``) so a view's rows
keep one line each. Data (``to_pandas``, ``tokens``) keeps the tokenizer's own pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

__all__ = ["readable_tokens"]

_MARKS = {"\n": "\u21b5", "\r": "\u240d", "\t": "\u21e5"}


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, inverted (the same table ``tokenizers``' ByteLevel uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _marks(text: str) -> str:
    return "".join(_MARKS.get(ch, ch) for ch in text)


def _byte_level(token: str) -> str:
    table = _byte_decoder()
    if any(ch not in table for ch in token):
        return token  # a special token such as <|endoftext|> or [CLS] written in plain characters
    try:
        return _marks(bytes(table[ch] for ch in token).decode("utf-8"))
    except UnicodeDecodeError:
        return token  # a piece of a multi-byte character: its pieces are all we can show


def _sentencepiece(token: str) -> str:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return _marks(chr(int(token[3:5], 16)))
        except ValueError:
            return token
    return _marks(token.replace("\u2581", " "))


def readable_tokens(tokens: Sequence[str], *, like: Sequence[str] | None = None) -> list[str]:
    """One sequence's pieces as text. The scheme is read from the sequence (or from ``like``, the pieces that words
    were joined from): byte-level BPE when a piece carries ``Ġ``/``Ċ``, SentencePiece when one carries ``▁``;
    otherwise (WordPiece, word-level, ids) the pieces stay, newlines and tabs marked."""
    tokens = [str(t) for t in tokens]
    pieces = tokens if like is None else [str(t) for t in like]
    if any("\u0120" in t or "\u010a" in t for t in pieces):
        return [_byte_level(t) for t in tokens]
    if any("\u2581" in t for t in pieces):
        return [_sentencepiece(t) for t in tokens]
    return [_marks(t) for t in tokens]
