"""Self-contained HTML views (no CDN, no RequireJS) and matplotlib figures."""

from .attention import head_view, model_view
from .html import View, embed_json, show
from .lens import dla_view, lens_view
from .matrix import matrix_view
from .scatter import scatter_view
from .score_table import score_table_view
from .table import table_view
from .tokens import token_view

__all__ = ["View", "dla_view", "embed_json", "head_view", "lens_view", "matrix_view", "model_view", "scatter_view",
           "score_table_view", "show", "table_view", "token_view"]
