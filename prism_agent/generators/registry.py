"""Backend kinds by name: each is one `Generator` class that registers itself with `@register(kind)`.

The config side (`config/backends.py`, `BACKENDS`) names the kinds a role table may ask for; here each kind
finds its class. The built-in backends live in modules that are imported only when a role asks for them
(`local` imports torch, `vllm` its engine), so this registry knows where each built-in kind is defined and
imports that module on first use; a backend defined anywhere else registers when its module is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

_CLASSES: dict[str, type] = {}
# where the built-in kinds register themselves (imported lazily: see the module docstring)
BUILTIN: dict[str, str] = {
    "local": "prism_agent.generators.local",
    "openai": "prism_agent.generators.openai_compat",
    "vllm": "prism_agent.generators.vllm_engine",
}


def register(kind: str) -> Callable[[type], type]:
    """Class decorator: the backend class for role tables with `backend = kind`. Its constructor takes the
    kind's config object; it sets `kind` on the class."""

    def add(cls: type) -> type:
        if _CLASSES.get(kind, cls) is not cls:
            raise ValueError(f"backend kind {kind!r} is registered twice ({_CLASSES[kind].__name__}, {cls.__name__})")
        cls.kind = kind  # type: ignore[attr-defined]
        _CLASSES[kind] = cls
        return cls

    return add


def backend_class(kind: str) -> type:
    """The registered class of `kind` (importing a built-in kind's module on first use)."""
    if kind not in _CLASSES and kind in BUILTIN:
        importlib.import_module(BUILTIN[kind])
    try:
        return _CLASSES[kind]
    except KeyError:
        raise KeyError(f"no backend registered for {kind!r}; registered: {', '.join(kinds())}") from None


def kinds() -> list[str]:
    """Every backend kind that can be built: the built-ins and whatever else has registered."""
    return sorted(set(BUILTIN) | set(_CLASSES))
