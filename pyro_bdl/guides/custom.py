"""Hand-written Pyro guides as guides of a :class:`~pyro_bdl.BNN`, and whether a guide was trained.

A guide written by hand for ``bnn.model`` -- ``pyro.param`` and ``pyro.sample`` for every weight
site, the signature ``(x, y=None, **kwargs)`` -- is accepted wherever a guide is
(``BNN(..., guide=my_guide)``, ``bnn.guide = my_guide``, ``BNN.load(..., guide=my_guide)``).
It is wrapped in a :class:`PyroGuide`, which

* passes the guide only the arguments its signature accepts (the engine calls guides like the
  model, ``guide(x, y, dataset_size=N)``: a guide without ``**kwargs`` never sees
  ``dataset_size``);
* records the ``pyro.param`` sites the guide uses, so that ``BNN.save`` can store their values
  (they live in Pyro's global param store under the names the guide gives them) and
  ``BNN.load`` can put them back;
* remembers each parameter's value when the guide created it, so that ``BNN.predict`` can tell
  an untrained guide (see :class:`InitialValues`).

**Guide or builder?** ``guide=`` also takes builders ``model -> guide``. A plain callable is read
by its signature (:func:`guide_or_builder`): one that takes two positional arguments ``(x, y)``
(the second named ``y`` when it is optional) is a guide; one that takes exactly one positional
argument is a builder; anything else (``*args``, ``(model, rank=2)``, an unreadable signature)
is ambiguous and refused with a ``TypeError`` naming the fix: wrap a guide as
``PyroGuide(fn)``, a builder as ``lambda model: fn(model)``.

A hand-written guide has no trace-free sampler, so fits take Pyro's traced ELBO estimate
(``elbo="auto"`` chooses it; ``elbo="trace_free"`` is refused), and predictions, ArviZ exports
and PSIS run it under a plate of draws at dim -2 (and vectorised particles under one at dim -2):
write it so that values with extra leading batch dimensions broadcast, as Pyro's own guides do.

Example::

    >>> import pyro, pyro.distributions as dist
    >>> def my_guide(x, y=None):
    ...     loc = pyro.param("doc.loc", torch.zeros(2))
    ...     return pyro.sample("w", dist.Normal(loc, 1.0).to_event(1))
    >>> guide_or_builder(my_guide), guide_or_builder(lambda model: my_guide)
    ('guide', 'builder')
    >>> guide = PyroGuide(my_guide)
    >>> guide(torch.zeros(3, 1), None, dataset_size=3).shape  # dataset_size is not passed on
    torch.Size([2])
    >>> guide.param_names, guide.untrained()
    (['doc.loc'], True)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pyro
import torch
from pyro.infer.autoguide import AutoGuide
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from torch import nn

__all__ = ["InitialValues", "PyroGuide", "check_batch_dims", "guide_or_builder"]

_FIX = (
    "wrap a guide (x, y=None, **kwargs) as pyro_bdl.guides.PyroGuide(fn), or a builder "
    "model -> guide as lambda model: fn(model)"
)


def _signature(fn: Callable) -> inspect.Signature | None:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # builtins and some C callables have none
        return None


def guide_or_builder(fn: Callable) -> str:
    """Whether a callable given as ``guide=`` is a guide or a builder ``model -> guide``.

    ``"guide"``: it takes the model's two positional arguments ``(x, y)`` -- either it requires
    both, or the optional second one is named ``y`` (``def guide(x, y=None, **kwargs)``).
    ``"builder"``: it takes exactly one positional argument (``lambda model: AutoNormal(model)``,
    a class ``MyGuide(model)``).

    :param fn: the callable (for an ``nn.Module``, its ``forward`` is read).
    :return: ``"guide"`` or ``"builder"``.
    :raises TypeError: for an ambiguous callable (``*args``, ``(model, rank=2)``, no readable
        signature) or one that takes neither, naming the fix (:class:`PyroGuide` or a lambda).

    Example::

        >>> guide_or_builder(lambda x, y: None), guide_or_builder(lambda model: None)
        ('guide', 'builder')
        >>> guide_or_builder(lambda *args: None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: Expected guide= to be a guide (x, y=None, **kwargs) or a builder ...
    """
    sig = _signature(fn)
    if sig is not None:
        one = _binds(sig, 1)
        two = _binds(sig, 2)
        if two:
            bound = list(sig.bind("x", "y").arguments.items())  # [(name, value), ...]
            named_y = len(bound) == 2 and bound[1] == ("y", "y")  # not *args
            if not one or named_y:
                return "guide"
        elif one:
            return "builder"
    shown = "no readable signature" if sig is None else f"signature {sig}"
    raise TypeError(
        "Expected guide= to be a guide (x, y=None, **kwargs) or a builder model -> guide (one "
        f"positional argument), but {getattr(fn, '__name__', type(fn).__name__)!r} has {shown}, "
        f"which could be either or neither: {_FIX}."
    )


def _binds(sig: inspect.Signature, num: int) -> bool:
    try:
        sig.bind(*range(num))
    except TypeError:
        return False
    return True


class _GuideRun(Messenger):
    """Around one run of a :class:`PyroGuide`: records the ``pyro.param`` sites it uses (and
    the values it created), and checks that its sample sites broadcast under plates."""

    def __init__(self, owner: PyroGuide) -> None:
        super().__init__()
        self.owner = owner
        self.creating: set[str] = set()

    def _pyro_param(self, msg: Message) -> None:
        name = str(msg["name"])  # a param site always has its name
        if name not in pyro.get_param_store():
            self.creating.add(name)

    def _pyro_post_param(self, msg: Message) -> None:
        name = str(msg["name"])
        self.owner._saw(name, msg["value"], name in self.creating)

    def _pyro_post_sample(self, msg: Message) -> None:
        check_batch_dims(msg)


def check_batch_dims(msg: Message) -> None:
    """A guide site's batch dimensions must all be plates' (or of size 1).

    The weights are global latents: under the plate that vectorises particles or draws (at dim
    -2 for a BNN), a value's extra leading dimension must line up with the plate. A guide that
    lets a dependent site broadcast against the wrong dimension (``w_loc + w_slope * b`` with
    ``b`` of shape ``(P, 1, 1)`` and ``w`` of event shape ``(1, 1)``) gets batch shape
    ``(P, P)``, and its log-density would be counted P times, silently: refused here.

    :raises ValueError: naming the site, its batch shape and the plates' dims.
    """
    fn = msg["fn"]
    batch_shape = tuple(getattr(fn, "batch_shape", ()))
    plates = {f.dim: f.size for f in msg["cond_indep_stack"] if f.dim is not None}
    for i, size in enumerate(reversed(batch_shape)):
        dim = -(i + 1)
        if size != 1 and plates.get(dim) != size:
            raise ValueError(
                f"Expected every batch dimension of guide site {msg['name']!r} to be a plate's "
                f"(or of size 1), but it has batch shape {batch_shape} under plates at dims "
                f"{sorted(plates) or 'none'}: declare a weight's own dimensions as event "
                "dimensions (dist.Normal(loc, scale).to_event(p.dim())), and write the guide so "
                "that values with extra leading batch dimensions broadcast (e.g. b.unsqueeze(-1) "
                "where a weight depends on a bias b): fit and predict run it under a plate of "
                "particles or draws at dim -2."
            )


class PyroGuide:
    """A hand-written Pyro guide (any callable ``guide(x, y=None, **kwargs)``) as a BNN guide.

    Calling it calls ``fn`` with the arguments its signature accepts: positional arguments
    beyond its positional parameters, and keyword arguments it does not name, are dropped
    (a ``*args``/``**kwargs`` parameter receives them all). Its parameters stay in Pyro's param
    store, under the names ``fn`` gives them (two BNNs with the same guide share them); this
    wrapper records those names (:attr:`param_names`) for ``BNN.save``/``BNN.load``.

    :param fn: the guide; it must sample every weight site of the model (``bnn.site_name(n)``
        for ``n`` in ``bnn.random_names``), each with the parameter's shape as its event shape.
    :raises TypeError: if ``fn`` is not callable, or is an AutoGuide *class* (pass the class
        itself as ``guide=``).

    Example::

        >>> import pyro, pyro.distributions as dist
        >>> from pyro.distributions import constraints
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> net = nn.Linear(1, 1)
        >>> def my_guide(x, y=None):
        ...     for name, p in net.named_parameters():
        ...         loc = pyro.param(f"pg.{name}.loc", torch.zeros_like(p))
        ...         scale = pyro.param(f"pg.{name}.scale", torch.full_like(p, 0.1),
        ...                            constraint=constraints.positive)
        ...         pyro.sample(name, dist.Normal(loc, scale).to_event(p.dim()))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1), guide=my_guide)
        >>> type(bnn.guide).__name__, bnn.guide.fn is my_guide
        ('PyroGuide', True)
        >>> x = torch.linspace(-1, 1, 10).unsqueeze(-1)
        >>> result = bnn.fit(x, 2 * x[:, 0], epochs=2, progress=False)  # Pyro's traced ELBO
        >>> bnn.guide.param_names
        ['pg.weight.loc', 'pg.weight.scale', 'pg.bias.loc', 'pg.bias.scale']
    """

    #: the hand-written guide
    fn: Callable

    def __init__(self, fn: Callable) -> None:
        if isinstance(fn, PyroGuide):
            fn = fn.fn
        if isinstance(fn, type) and issubclass(fn, AutoGuide):
            raise TypeError(
                f"Expected a guide function, but got the AutoGuide class {fn.__name__}: pass the "
                "class itself as guide= (it is built for the model)."
            )
        if not callable(fn):
            raise TypeError(f"Expected a callable guide, but got {type(fn).__name__}.")
        self.fn = fn
        sig = _signature(fn)
        params = [] if sig is None else list(sig.parameters.values())
        kinds = {p.kind for p in params}
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        #: how many positional arguments ``fn`` takes (``None``: all)
        self._num_args: int | None = (
            None
            if sig is None or inspect.Parameter.VAR_POSITIONAL in kinds
            else sum(p.kind in positional for p in params)
        )
        #: the keyword arguments ``fn`` takes (``None``: all)
        self._keywords: frozenset[str] | None = (
            None
            if sig is None or inspect.Parameter.VAR_KEYWORD in kinds
            else frozenset(
                p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY
            )
        )
        #: names of the ``pyro.param`` sites the guide has used, in the order first seen
        self.param_names: list[str] = []
        #: the unconstrained value of each parameter this guide created, at its creation
        self._initial: dict[str, torch.Tensor] = {}
        #: parameters that were in the param store before this guide first used them
        self._preexisting: set[str] = set()
        #: whether the guide has been called
        self.ran = False
        #: per-example shape of the inputs ``x`` of the last call (``None`` before)
        self.input_shape: tuple[int, ...] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the guide with the arguments it accepts; returns what it returns."""
        if self._num_args is not None:
            args = args[: self._num_args]
        if self._keywords is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._keywords}
        if args and torch.is_tensor(args[0]) and args[0].dim() > 0:
            self.input_shape = tuple(args[0].shape[1:])
        self.ran = True
        with _GuideRun(self):
            return self.fn(*args, **kwargs)

    def _saw(self, name: str, value: Any, created: bool) -> None:
        if name not in self.param_names:
            self.param_names.append(name)
        if created:  # (again, after pyro.clear_param_store())
            self._initial[name] = _leaf(value).detach().clone()
            self._preexisting.discard(name)
        elif name not in self._initial:
            self._preexisting.add(name)

    def unconstrained_params(self) -> dict[str, torch.Tensor]:
        """``{name: unconstrained leaf tensor}`` of every parameter in :attr:`param_names`,
        read from Pyro's param store (what optimisers step; ``BNN.save`` stores these).

        :raises RuntimeError: if the param store no longer holds one of them (it was cleared).
        """
        store = dict(pyro.get_param_store().named_parameters())
        missing = [n for n in self.param_names if n not in store]
        if missing:
            raise RuntimeError(
                f"Expected Pyro's param store to hold the guide's parameters, but {missing} are "
                "gone (pyro.clear_param_store() after fitting?): fit the BNN again, or load it."
            )
        return {n: store[n] for n in self.param_names}

    def load_params(self, values: Mapping[str, torch.Tensor]) -> None:
        """Overwrite the guide's parameters with saved unconstrained values (in place).

        The guide must have run (so that it created its parameters, with their constraints).

        :param values: ``{name: unconstrained tensor}``, as :meth:`unconstrained_params` gives.
        :raises ValueError: naming a saved parameter the guide does not have, or a shape that
            differs: pass the guide the values were saved from.
        """
        unknown = [n for n in values if n not in self.param_names]
        if unknown:
            raise ValueError(
                f"Expected the guide to create the saved parameter(s) {unknown}, but it uses "
                f"{self.param_names}: pass the guide the posterior was saved with."
            )
        have = self.unconstrained_params()
        for name, value in values.items():
            if have[name].shape != value.shape:
                raise ValueError(
                    f"Expected the guide's parameter {name!r} of shape {tuple(value.shape)} as "
                    f"saved, but it has shape {tuple(have[name].shape)}: pass the guide the "
                    "posterior was saved with."
                )
            with torch.no_grad():
                have[name].copy_(value)

    def untrained(self) -> bool:
        """Whether nothing has trained this guide: it has not run yet, or it created every
        parameter it uses and each still holds the value it was created with.

        ``False`` when a parameter already existed before the guide first used it (trained
        elsewhere: it cannot tell), was removed from the param store, or the guide has no
        parameters at all.
        """
        if not self.ran:
            return True
        if not self._initial or self._preexisting:
            return False
        store = dict(pyro.get_param_store().named_parameters())
        return all(
            n in store and torch.equal(store[n].detach(), init) for n, init in self._initial.items()
        )

    def __repr__(self) -> str:
        return f"PyroGuide({getattr(self.fn, '__qualname__', repr(self.fn))})"


def _leaf(value: Any) -> torch.Tensor:
    get = getattr(value, "unconstrained", None)
    leaf = get() if callable(get) else None
    return value if leaf is None else leaf


class InitialValues:
    """Remembers the parameter values a guide was created with, to tell whether anything (a
    ``fit``, plain ``SVI``, an optimiser loop of one's own) has changed them since.

    An AutoGuide that has not built its parameters yet is watched (two forward hooks, removed
    once it has built them); a :class:`PyroGuide` keeps its own record. A guide whose parameters
    already existed when it was handed over, or any other guide, is never called untrained.

    :param guide: the guide (an AutoGuide, a :class:`PyroGuide`, or anything else).

    Example::

        >>> from pyro.infer.autoguide import AutoNormal
        >>> import pyro, pyro.distributions as dist
        >>> def model():
        ...     pyro.sample("w", dist.Normal(0.0, 1.0))
        >>> guide = AutoNormal(model)
        >>> watch = InitialValues(guide)
        >>> _ = guide()  # builds the parameters
        >>> watch.untrained(guide)
        True
        >>> with torch.no_grad():
        ...     _ = guide.locs.w.add_(0.1)  # what an optimiser step does
        >>> watch.untrained(guide)
        False
    """

    def __init__(self, guide: Any) -> None:
        self.values: dict[str, torch.Tensor] | None = None
        self._building = False
        self._handles: list[Any] = []
        if isinstance(guide, AutoGuide) and guide.prototype_trace is None:
            self._handles = [
                guide.register_forward_pre_hook(self._before),
                guide.register_forward_hook(self._after),
            ]

    def _before(self, module: nn.Module, args: Any) -> None:
        self._building = getattr(module, "prototype_trace", None) is None

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._building and getattr(module, "prototype_trace", None) is not None:
            self.values = {n: p.detach().clone() for n, p in module.named_parameters()}
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def untrained(self, guide: Any) -> bool:
        """Whether ``guide`` (the one watched) still has every parameter it was created with.

        An AutoGuide that has not built its parameters yet counts as untrained.
        """
        if isinstance(guide, PyroGuide):
            return guide.untrained()
        if not isinstance(guide, AutoGuide):
            return False
        if guide.prototype_trace is None:
            return True
        if self.values is None:  # built before it was watched: trained elsewhere, maybe
            return False
        now = dict(guide.named_parameters())
        return all(n in now and torch.equal(now[n].detach(), v) for n, v in self.values.items())

    def detach(self) -> None:
        """Stop watching (the guide was replaced)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
