"""What every attribution method shares: the prepared request, the options dataclass built from the catalog
entry, and the base class each method subclasses (one class per method, Captum's habit).

A method class names its catalog entry (``name = "integrated_gradients"``); the class gets ``spec`` (the entry) and
``Options`` (a frozen dataclass with the entry's options, their defaults and checks) when it is defined. A method
adds checks that involve several options in :meth:`AttributionMethod.check`, and computes in
:meth:`AttributionMethod.run`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..results.attribution import AttributionResult
from . import catalog
from ..inputs import ModelInputs
from .targets import Target

__all__ = ["AttributionMethod", "Request", "check_options", "options_class"]


@dataclass
class Request:
    """Everything ``attribute`` prepares once, for any method.

    ``inputs`` are the user's inputs as given (before a continuation target extends them); ``seed`` is always an
    int (drawn when the user gave none); ``internal_batch_size``/``memory_budget`` size the chunks (see
    :mod:`attnscope.attribution.chunking`); ``progress`` None shows a bar only for long runs.
    """

    model: nn.Module
    inputs: ModelInputs
    target: Target
    tokenizer: Any
    baselines: Any
    seed: int
    internal_batch_size: int | str
    memory_budget: int | None
    progress: bool | None
    prediction: Any = None  # set by the method from its forward on the real input (prediction.predict)

    @property
    def device(self) -> torch.device:
        return self.inputs.input_ids.device


def options_class(spec: catalog.MethodSpec, options: tuple[catalog.Option, ...] | None = None) -> type:
    """A frozen dataclass of ``spec``'s options: fields with the catalog's defaults, each checked on creation."""
    opts = spec.options if options is None else options
    fields = [(o.name, Any, dataclasses.field(default=o.default)) for o in opts]

    def __post_init__(self) -> None:
        for o in opts:
            object.__setattr__(self, o.name, o.validate(getattr(self, o.name)))

    name = "".join(part.title() for part in spec.name.split("_")) + "Options"
    return dataclasses.make_dataclass(name, fields, frozen=True, namespace={"__post_init__": __post_init__})


def check_options(spec: catalog.MethodSpec, given: dict[str, Any], entry: str = "attribute",
                  options: tuple[catalog.Option, ...] | None = None,
                  takers: dict[str, tuple[str, ...]] | None = None) -> None:
    """Refuse options that ``spec`` does not take (``options``, default its ``attribute`` options), naming the
    methods that do (``takers``: option name -> methods) or the options it takes."""
    options = spec.options if options is None else options
    takers = catalog.all_option_names() if takers is None else takers
    accepted = {o.name for o in options}
    for name in given:
        if name in accepted:
            continue
        if name in takers:
            raise ValueError(f"method={spec.name!r} takes no {name}= (only {', '.join(takers[name])} do); "
                             f"drop {name}=")
        accepted_text = ", ".join(o.name for o in options) or "no options"
        raise TypeError(f"{entry}() got an unexpected keyword argument {name!r}; method={spec.name!r} takes "
                        f"{accepted_text} (see ats.list_methods())")


class AttributionMethod:
    """One attribution method: its options (``self.options``, an instance of ``Options``) and its ``run``."""

    name: ClassVar[str]
    spec: ClassVar[catalog.MethodSpec]
    Options: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.spec = catalog.list_methods()[cls.name]
            cls.Options = options_class(cls.spec)

    def __init__(self, **options: Any) -> None:
        check_options(self.spec, options, type(self).__name__)
        self.options = self.Options(**options)
        self.check()

    def check(self) -> None:
        """Checks that involve several options (one option's own check runs in ``Options``)."""

    def run(self, request: Request) -> AttributionResult:
        raise NotImplementedError

    # --- attribute_generation (methods whose catalog entry has generation=True) --------------------------------
    @classmethod
    def check_generation(cls, options: Any) -> None:
        """Checks of the generation options that involve several of them."""

    @classmethod
    def explain_generation(cls, run: Any, options: Any) -> torch.Tensor:
        """``[generated, prompt + generated]`` scores of every step, from a
        :class:`~attnscope.attribution.generation.run.GenerationRun`."""
        raise NotImplementedError(f"{cls.__name__} has no generation mode")

    def __repr__(self) -> str:
        given = ", ".join(f"{f.name}={getattr(self.options, f.name)!r}" for f in dataclasses.fields(self.options))
        return f"{type(self).__name__}({given})"
