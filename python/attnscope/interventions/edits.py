"""Writing at an activation site: a hook that hands the site's tensor to a function and continues with its result.

The site names and where they sit are :mod:`attnscope.adapters.sites`' (the ones ``capture_activations`` reads):
``"in"`` sites are edited in a forward pre-hook (the module's first input), ``"out"`` sites in a forward hook (the
output, its first element for tuples). ``head_out`` is handed over split into heads, ``[batch, n, heads,
d_head]``; every other site as ``[batch, n, dim]``.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..activations.capture import read_site
from ..adapters.sites import SITES, Family, find_family, layer_indices, num_heads, num_layers, site_module

EditFn = Callable[[Tensor], Tensor]

__all__ = ["EditFn", "check_layer", "check_site", "install_edit", "site_family"]


def check_site(site: object) -> str:
    """``site`` if it is one of :data:`SITES`; else a ValueError naming the valid ones."""
    if not isinstance(site, str) or site not in SITES:
        raise ValueError(f"unknown site {site!r}: valid sites are {', '.join(SITES)}")
    return site


def check_layer(model: nn.Module, layer: object) -> int:
    """``layer`` as an index in ``0..n_layers-1`` (negative counts from the end); a ValueError names the range."""
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise TypeError(f"layer must be an integer, got {layer!r}")
    return layer_indices([layer], num_layers(model))[0]


def site_family(model: nn.Module) -> Family:
    family = find_family(model)
    assert family is not None
    return family


def _split(x: Tensor, site: str, heads: int) -> Tensor:
    return x.reshape(*x.shape[:2], heads, -1) if site == "head_out" else x


def install_edit(model: nn.Module, site: str, layer: int, fn: EditFn) -> RemovableHandle:
    """Hook ``fn`` on ``site`` of ``layer``: the forward continues with ``fn(x)`` where ``x`` is the site's tensor
    (``head_out``: ``[batch, n, heads, d_head]``). Returns the hook's handle (``.remove()``)."""
    module, side = site_module(model, site_family(model), check_site(site), layer)
    heads = num_heads(model) if site == "head_out" else 0

    def edited(x: Tensor) -> Tensor:
        y = fn(_split(x, site, heads))
        return y.reshape(x.shape) if site == "head_out" else y

    if side == "in":
        def pre_hook(mod: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            x = read_site("in", args, kwargs)
            if args:
                return (edited(x), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edited(x)}

        return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def hook(mod: nn.Module, args: tuple, output: Any) -> Any:
        x = read_site("out", args, {}, output)
        if isinstance(output, tuple):
            return (edited(x), *output[1:])
        if isinstance(output, list):
            return [edited(x), *output[1:]]
        if isinstance(output, Tensor):
            return edited(x)
        raise TypeError(f"cannot edit the output of {type(mod).__name__} ({type(output).__name__}); "
                        "pick another site")

    return module.register_forward_hook(hook)
