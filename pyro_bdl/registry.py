"""One registry of the classes a saved file may name: priors, likelihoods, guide builders.

A class deriving from :class:`Configurable` with a ``config_kind`` registers itself under its
``config_key`` (by default its class name, which is what files written by every release store)
when the class is defined in ``pyro_bdl`` or sets ``config_key`` explicitly. Reading a file
looks the name up here and calls the class's :meth:`Configurable.from_config` with plain data:
nothing is imported and no code from the file runs.

Example::

    >>> from pyro_bdl.registry import from_config, to_config
    >>> from pyro_bdl.likelihoods import HomoskedasticGaussian
    >>> data = to_config(HomoskedasticGaussian(0.5))
    >>> data["type"], from_config(data, "likelihood")
    ('HomoskedasticGaussian', HomoskedasticGaussian(scale=0.5))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["Configurable", "from_config", "registered", "to_config"]

#: ``{(kind, key): class}``
_REGISTRY: dict[tuple[str, str], type[Configurable]] = {}


class Configurable:
    """Base of the classes that save as plain data (``config()``) and rebuild from it.

    Subclass attributes: ``config_kind`` (``"prior"``, ``"likelihood"``, ``"guide"``: set on a
    family's base class, which is itself not registered) and, optionally, ``config_key``
    (default: the class name). Override
    :meth:`from_config` when the configuration holds more than constructor keywords (e.g. a
    distribution described as data).

    Example::

        >>> class PriorBase(Configurable):
        ...     config_kind = "prior"
        >>> class MyPrior(PriorBase):
        ...     config_key = "MyPrior"  # registers a class defined outside pyro_bdl
        ...     def __init__(self, scale): self.scale = scale
        ...     def config(self): return {"scale": self.scale}
        >>> from_config({"type": "MyPrior", "config": {"scale": 2.0}}, "prior").scale
        2.0
    """

    config_kind: ClassVar[str] = ""
    config_key: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        explicit = "config_key" in cls.__dict__
        if not explicit:
            cls.config_key = cls.__name__
        own = cls.__module__.startswith("pyro_bdl") and not cls.__name__.startswith("_")
        family_base = "config_kind" in cls.__dict__  # e.g. Prior: the base is not a type
        if cls.config_kind and not family_base and (explicit or own):
            _REGISTRY[(cls.config_kind, cls.config_key)] = cls

    def config(self) -> dict[str, Any] | None:
        """JSON-able constructor arguments, or ``None`` if this object is not describable."""
        return None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **context: Any) -> Any:
        """Rebuild an object from :meth:`config`'s output (``context``: e.g. a prior's
        ``include`` predicate, passed by the caller)."""
        return cls(**dict(config), **context)


def to_config(obj: Any) -> dict[str, Any] | None:
    """``{"type": key, "config": obj.config()}``, or ``None`` when not describable as data."""
    cfg = obj.config() if hasattr(obj, "config") else None
    if cfg is None:
        return None
    return {"type": getattr(type(obj), "config_key", "") or type(obj).__name__, "config": cfg}


def registered(kind: str) -> dict[str, type[Configurable]]:
    """``{key: class}`` of one kind."""
    return {key: cls for (k, key), cls in _REGISTRY.items() if k == kind}


def from_config(data: Mapping[str, Any], kind: str, **context: Any) -> Any:
    """Rebuild a ``kind`` object from ``{"type": key, "config": {...}}``; known keys only.

    :raises ValueError: for a key not registered under ``kind`` (the known ones are listed).
    """
    key = str(data.get("type"))
    known = registered(kind)
    if key not in known:
        raise ValueError(f"Expected a {kind} type among {sorted(known)}, but got {key!r}.")
    return known[key].from_config(data.get("config") or {}, **context)
