"""Self-contained HTML views (no CDN, no RequireJS) and matplotlib figures."""

from .attention import head_view, model_view
from .html import View, embed_json, show
from .matrix import matrix_view
from .table import table_view
from .tokens import token_view

__all__ = ["View", "embed_json", "head_view", "matrix_view", "model_view", "show", "table_view", "token_view"]
