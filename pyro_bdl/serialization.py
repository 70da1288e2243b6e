"""What a saved posterior or fit looks like on disk; the only module that knows.

**The file format**: plain data in, plain data out, nothing executed on load. Layout::

    b"PYROBDL\\n"                    8 bytes, magic
    format version                   4 bytes, little-endian unsigned int
    SHA-256 of the payload           32 bytes
    payload                          torch.save({"config": <JSON text>, "tensors": {name: Tensor}})

The header is checked before anything is deserialised: a file that is not ours, is truncated,
has a flipped bit or a format version this code does not read is rejected with ``ValueError``.
The payload is then read with ``torch.load(weights_only=True)``, which refuses every object that
is not a tensor or plain container, so a pickle payload cannot run code. Files are written to a
temporary name and renamed, so an interrupted save never leaves a half-written checkpoint.

**The layouts**: a posterior (``BNN.save``) is ``{"bnn": <configuration>}`` with the module's
state dict; a fit checkpoint adds ``"fit"`` (epoch, history, the optimiser state's skeleton)
and the tensors ``optim/...`` and ``rng.torch``/``rng.shuffle``. Priors, likelihoods and
guides are rebuilt from their configuration by name, among the package's known classes only.

A hand-written guide (:class:`~pyro_bdl.guides.PyroGuide`) has no configuration: its code is
not saved, and ``BNN.load`` needs it back (``guide=my_guide``). Its parameters live in Pyro's
param store, not in the module: the file stores the unconstrained value of every ``pyro.param``
the guide has used (``guide_params`` in the configuration names them; the tensors are
``pyro_param/<name>``), and ``load`` runs the given guide once (creating its parameters, with
their constraints) and overwrites them with the saved values, bitwise.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyro.optim
import torch
from pyro.optim import PyroOptim
from torch import nn

from ._version import __version__
from .guides import GuideLike, PyroGuide, guide_config, guide_from_config
from .inference.state import FitState
from .likelihoods import Likelihood, likelihood_from_config
from .priors import Prior, PriorLike, prior_from_config
from .registry import to_config

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "CheckpointError",
    "FitCheckpoint",
    "PosteriorFile",
    "check_architecture",
    "component_config",
    "load_posterior",
    "module_state",
    "read_checkpoint",
    "read_fit_state",
    "read_posterior",
    "rebuild_components",
    "save_posterior",
    "write_checkpoint",
    "write_fit_state",
]

MAGIC = b"PYROBDL\n"
FORMAT_VERSION = 1
_HEADER = len(MAGIC) + 4 + 32


class CheckpointError(ValueError):
    """A file that is not a readable pyro_bdl checkpoint."""


def write_checkpoint(
    path: str | os.PathLike, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Write ``config`` (JSON-able) and ``tensors`` atomically to ``path``.

    :param path: destination file.
    :param config: plain data (dicts, lists, str, numbers, bools, None).
    :param tensors: ``{name: tensor}``; stored detached, on the CPU.
    :return: the path written.
    :raises TypeError: if ``config`` is not JSON-serialisable.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_checkpoint(Path(tmp.name) / "c.pt", {"a": 1}, {"w": torch.zeros(2)})
        >>> path.name, path.read_bytes()[:8]
        ('c.pt', b'PYROBDL\\n')
        >>> tmp.cleanup()
    """
    try:
        text = json.dumps(config, allow_nan=True)
    except TypeError as e:
        raise TypeError(f"Expected a JSON-serialisable checkpoint config: {e}") from e
    buf = io.BytesIO()
    torch.save({"config": text, "tensors": {k: v.detach().cpu() for k, v in tensors.items()}}, buf)
    payload = buf.getvalue()
    header = MAGIC + struct.pack("<I", FORMAT_VERSION) + hashlib.sha256(payload).digest()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint; return ``(config, tensors)``.

    :raises CheckpointError: if the file is not ours, is corrupted or truncated, has another
        format version, or holds anything but plain data.
    :raises FileNotFoundError: if there is no such file.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_checkpoint(Path(tmp.name) / "c.pt", {"a": 1}, {"w": torch.ones(2)})
        >>> read_checkpoint(path)
        ({'a': 1}, {'w': tensor([1., 1.])})
        >>> _ = path.write_bytes(b"not a checkpoint")
        >>> read_checkpoint(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pyro_bdl.serialization.CheckpointError: Expected a pyro_bdl checkpoint ...
        >>> tmp.cleanup()
    """
    data = Path(path).read_bytes()
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(
            f"Expected a pyro_bdl checkpoint (starting with {MAGIC!r}), but {str(path)!r} is not "
            "one (or is truncated). Save posteriors with BNN.save()."
        )
    (version,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"Expected checkpoint format version {FORMAT_VERSION}, but {str(path)!r} has "
            f"version {version}; use the pyro_bdl release that wrote it."
        )
    digest, payload = data[len(MAGIC) + 4 : _HEADER], data[_HEADER:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(
            f"The checkpoint {str(path)!r} is corrupted or truncated: its SHA-256 does not match."
        )
    try:
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses code objects; re-raise as our error
        raise CheckpointError(f"The checkpoint {str(path)!r} holds non-plain data: {e}") from e
    if not (
        isinstance(obj, dict)
        and isinstance(obj.get("config"), str)
        and isinstance(obj.get("tensors"), dict)
        and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj["tensors"].items())
    ):
        raise CheckpointError(f"The checkpoint {str(path)!r} does not have the expected layout.")
    try:
        config = json.loads(obj["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"The checkpoint {str(path)!r} has a malformed config: {e}") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"The checkpoint {str(path)!r} has a malformed config.")
    return config, obj["tensors"]


# ================================================================================ layouts
#: Tensor-name prefixes of the optimiser and RNG state in a fit checkpoint.
FIT_STATE_KEYS = ("optim/", "rng.")
#: Tensor-name prefix of a hand-written guide's parameters (``pyro_param/<param-store name>``).
GUIDE_PARAM_KEY = "pyro_param/"


def component_config(obj: Any) -> dict[str, Any] | None:
    """``{"type": registered name, "config": obj.config()}``, or ``None`` when not describable
    (see :mod:`pyro_bdl.registry`).

    Example::

        >>> from pyro_bdl.likelihoods import Categorical
        >>> component_config(Categorical())
        {'type': 'Categorical', 'config': {'dataset_size': None}}
    """
    return to_config(obj)


def read_posterior(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(configuration, tensors)`` of a file written by ``BNN.save`` (or a fit checkpoint).

    :raises CheckpointError: for a file that is not a BNN checkpoint.
    """
    config, tensors = read_checkpoint(path)
    cfg = config.get("bnn")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("random_names"), list):
        raise CheckpointError(f"Expected a BNN checkpoint, but {str(path)!r} holds another kind.")
    return config, tensors


def _posterior_types() -> dict[str, Any]:
    """The posterior classes a file may name: ``SamplesPosterior`` and ``pyro_bdl.posteriors``."""
    from . import posteriors
    from .inference.posterior import SamplesPosterior

    found: dict[str, Any] = {"SamplesPosterior": SamplesPosterior}
    for name in posteriors.__all__:
        obj = getattr(posteriors, name)
        if isinstance(obj, type) and hasattr(obj, "from_state"):
            found[obj.__name__] = obj
    return found


def save_posterior(posterior: Any, path: str | os.PathLike) -> Path:
    """Write a posterior that is not a guide (ensemble, Laplace, SWAG, MCMC draws) to ``path``.

    The file holds the posterior's ``to_state()`` — plain data and named tensors, in the format
    above, under the key ``"posterior"`` — not the network: save the :class:`~pyro_bdl.BNN`
    with its own :meth:`~pyro_bdl.BNN.save` (a Laplace posterior is centred on its weights).

    :param posterior: any object with ``to_state() -> (config, tensors)`` and a class method
        ``from_state(config, tensors, bnn)``: a :class:`~pyro_bdl.inference.SamplesPosterior` or
        a type of :mod:`pyro_bdl.posteriors`.
    :param path: destination file.
    :return: the path written.
    :raises TypeError: for an object without ``to_state``.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> from pyro_bdl.inference import SamplesPosterior
        >>> tmp = tempfile.TemporaryDirectory()
        >>> post = SamplesPosterior({"w": torch.ones(3, 2)})
        >>> path = save_posterior(post, Path(tmp.name) / "p.pt")
        >>> load_posterior(path).samples["w"].shape
        torch.Size([3, 2])
        >>> tmp.cleanup()
    """
    to_state = getattr(posterior, "to_state", None)
    if not callable(to_state):
        raise TypeError(
            "Expected a posterior with to_state() (a SamplesPosterior or a pyro_bdl.posteriors "
            f"type), but got {type(posterior).__name__}; a fitted guide is saved with bnn.save."
        )
    config, tensors = to_state()
    clash = [k for k in tensors if not isinstance(k, str)]
    if clash:
        raise TypeError(f"Expected tensor names as str, but got {clash}.")
    meta = {"posterior": dict(config), "pyro_bdl_version": __version__}
    return write_checkpoint(path, meta, dict(tensors))


def load_posterior(path: str | os.PathLike, bnn: Any = None) -> Any:
    """Read a posterior written by :func:`save_posterior`, for ``bnn`` (the same model).

    Only the package's own posterior classes are rebuilt (by the name in the file); nothing in
    the file is executed.

    :param path: a file written by :func:`save_posterior`.
    :param bnn: the :class:`~pyro_bdl.BNN` the posterior belongs to (required by the types that
        need the model, e.g. Laplace; optional for ``SamplesPosterior``, where it checks the sites).
    :raises CheckpointError: for a file that is not ours or holds no posterior.
    :raises ValueError: for a posterior type this version does not know.
    """
    config, tensors = read_checkpoint(path)
    state = config.get("posterior")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"Expected a posterior file (written by save_posterior), but {path} holds "
            f"{sorted(config)}; a BNN file is read with BNN.load."
        )
    types = _posterior_types()
    cls = types.get(str(state.get("type")))
    if cls is None:
        raise ValueError(
            f"Expected a posterior type among {sorted(types)}, but the file names "
            f"{state.get('type')!r}; it was written by pyro_bdl {config.get('pyro_bdl_version')}."
        )
    return cls.from_state(state, tensors, bnn)


def check_architecture(net: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """The network must have exactly the saved parameters (``"net."`` tensors), same shapes.

    :raises TypeError: if ``net`` is not an ``nn.Module``.
    :raises ValueError: naming the first mismatched parameter.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"Expected net to be a torch.nn.Module, but got {type(net).__name__}.")
    saved = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    have = net.state_dict()
    for k, v in saved.items():
        if k not in have:
            raise ValueError(
                f"Expected the network to have parameter {k!r} of shape {tuple(v.shape)} as "
                "saved, but it has no such parameter: load into a network of the saved "
                "architecture."
            )
        if have[k].shape != v.shape:
            raise ValueError(
                f"Expected parameter {k!r} of shape {tuple(v.shape)} as saved, but the network's "
                f"has shape {tuple(have[k].shape)}: load into a network of the saved architecture."
            )
    extra = [k for k in have if k not in saved]
    if extra:
        raise ValueError(
            f"Expected the saved architecture, but the network has parameter(s) {extra} that the "
            "checkpoint does not."
        )


class InSet:
    """``include`` predicate: the parameter names of a saved posterior.

    Example::

        >>> InSet(["0.weight"])("0.weight", torch.zeros(1))
        True
    """

    def __init__(self, names: list[str]) -> None:
        self.names = frozenset(names)

    def __call__(self, name: str, param: torch.Tensor) -> bool:
        return name in self.names


def _component(given: Any, saved: dict | None, what: str, build: Callable) -> Any:
    if given is not None:
        return given
    if saved is None:
        raise ValueError(f"The saved {what} was custom (not describable as data): pass {what}=.")
    return build(str(saved["type"]), saved["config"])


def rebuild_components(
    cfg: Mapping[str, Any],
    *,
    prior: PriorLike | None = None,
    likelihood: Likelihood | None = None,
    guide: GuideLike = None,
) -> tuple[PriorLike, Likelihood, GuideLike, InSet]:
    """The prior, likelihood and guide of a saved posterior: given ones win, else rebuilt.

    :return: ``(prior, likelihood, guide, include)``, ``include`` selecting the saved weights.
    :raises ValueError: for a custom component that was not given.
    """
    include = InSet([str(n) for n in cfg["random_names"]])
    built_prior: Prior = _component(
        prior, cfg.get("prior"), "prior", lambda t, c: prior_from_config(t, c, include)
    )
    built_likelihood: Likelihood = _component(
        likelihood, cfg.get("likelihood"), "likelihood", likelihood_from_config
    )
    if guide is None:
        if cfg.get("guide") is None:
            kind = "hand-written" if cfg.get("guide_params") is not None else "custom"
            raise ValueError(
                f"The saved guide was {kind} (its code is not saved, only its parameters): "
                "pass the same guide to BNN.load(path, net, guide=my_guide)."
            )
        guide = guide_from_config(cfg["guide"])
    return built_prior, built_likelihood, guide, include


def module_state(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The module part of a checkpoint's tensors (not a fit's optimiser or RNG state, not a
    hand-written guide's parameters)."""
    return {
        k: v
        for k, v in tensors.items()
        if not k.startswith(FIT_STATE_KEYS) and not k.startswith(GUIDE_PARAM_KEY)
    }


def guide_params(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A hand-written guide's parameters in a checkpoint's tensors: ``{param-store name: value}``.

    Example::

        >>> guide_params({"net.weight": torch.zeros(1), "pyro_param/q.loc": torch.ones(1)})
        {'q.loc': tensor([1.])}
    """
    return {
        k[len(GUIDE_PARAM_KEY) :]: v for k, v in tensors.items() if k.startswith(GUIDE_PARAM_KEY)
    }


def flatten_state(obj: Any, path: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Split nested optimiser state into ``{path: tensor}`` and a JSON skeleton.

    Example::

        >>> flatten_state({"step": 3, "m": torch.zeros(2)}, "optim")[1]
        {'__dict__': [['step', 3], ['m', {'__tensor__': 'optim/m'}]]}
    """
    if torch.is_tensor(obj):
        return {path: obj}, {"__tensor__": path}
    if isinstance(obj, dict):
        tensors: dict[str, torch.Tensor] = {}
        items = []
        for k, v in obj.items():
            t, plain = flatten_state(v, f"{path}/{k}")
            tensors.update(t)
            items.append([k, plain])
        return tensors, {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        tensors, items = {}, []
        for i, v in enumerate(obj):
            t, plain = flatten_state(v, f"{path}/{i}")
            tensors.update(t)
            items.append(plain)
        return tensors, {"__list__": items, "tuple": isinstance(obj, tuple)}
    return {}, obj


def unflatten_state(plain: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`flatten_state`."""
    if isinstance(plain, dict) and "__tensor__" in plain:
        return tensors[plain["__tensor__"]]
    if isinstance(plain, dict) and "__dict__" in plain:
        return {k: unflatten_state(v, tensors) for k, v in plain["__dict__"]}
    if isinstance(plain, dict) and "__list__" in plain:
        items = [unflatten_state(v, tensors) for v in plain["__list__"]]
        return tuple(items) if plain.get("tuple") else items
    return plain


def write_fit_state(
    path: str | os.PathLike,
    config: dict[str, Any],
    module: Mapping[str, torch.Tensor],
    optim: PyroOptim,
    owner: str,
    state: FitState,
) -> Path:
    """Write a fit checkpoint atomically: the posterior (``config``, ``module`` state dict),
    ``optim``'s state (param-store names with the ``owner`` prefix removed), torch's RNG
    state, the minibatch generator's state, the epoch and the history.

    Example::

        >>> write_fit_state("fit.pt", {"bnn": cfg}, bnn.state_dict(), optim, "BNN0.", state)
        ... # doctest: +SKIP
    """
    raw = optim.get_state()
    optim_state = {k.removeprefix(owner): v for k, v in raw.items()}
    flat, optim_plain = flatten_state(optim_state, "optim")
    tensors = dict(module)
    tensors.update(flat)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = state.generator.get_state()
    history = {k: v for k, v in vars(state.history).items() if isinstance(v, list)}
    fit = {"epoch": state.epoch, "history": history, "optim": optim_plain}
    foreign = sorted(k for k in raw if not k.startswith(owner))  # a hand-written guide's
    if foreign:
        fit["optim_foreign"] = foreign
    return write_checkpoint(path, {**config, "fit": fit}, tensors)


def read_fit_state(
    path: str | os.PathLike,
    optim: PyroOptim | None = None,
    owner: str = "",
    state: FitState | None = None,
) -> FitCheckpoint:
    """Read a fit checkpoint written by :func:`write_fit_state`; restore it when asked.

    With ``optim``, its state is set (names prefixed with ``owner``); with ``state``, torch's
    RNG, the generator, the epoch and the history are restored into it, so the fit continues
    exactly where the checkpointed one was.

    :return: the checkpoint's contents (``module``: the state dict to load).
    :raises CheckpointError: for a file without a fit's state.
    """
    config, tensors = read_checkpoint(path)
    fit = config.get("fit")
    if not isinstance(fit, dict):
        raise CheckpointError(
            f"Expected a checkpoint written by fit(checkpoint_every=...), but {str(path)!r} "
            "has no optimiser state."
        )
    saved = FitCheckpoint(
        config={k: v for k, v in config.items() if k != "fit"},
        module=module_state(tensors),
        optim_state=unflatten_state(fit["optim"], tensors),
        rng_torch=tensors["rng.torch"],
        rng_shuffle=tensors["rng.shuffle"],
        epoch=int(fit["epoch"]),
        history={str(k): list(v) for k, v in fit["history"].items()},
        guide_params=guide_params(tensors),
    )
    if optim is not None:
        foreign = set(fit.get("optim_foreign", []))  # param-store names not under the owner
        optim.set_state(
            {(k if k in foreign else owner + k): v for k, v in saved.optim_state.items()}
        )
    if state is not None:
        torch.set_rng_state(saved.rng_torch)
        state.generator.set_state(saved.rng_shuffle)
        for k, v in saved.history.items():
            getattr(state.history, k).extend(v)
        state.epoch = saved.epoch
    return saved


@dataclass
class FitCheckpoint:
    """What a fit checkpoint holds, read back.

    :ivar config: the posterior's configuration (``"bnn"``).
    :ivar module: the module state dict.
    :ivar optim_state: ``pyro.optim`` state with the owner's prefix removed from its keys.
    :ivar rng_torch: torch's global RNG state.
    :ivar rng_shuffle: the minibatch-order generator's state.
    :ivar epoch: epochs completed.
    :ivar history: the ``FitResult`` lists so far.
    :ivar guide_params: a hand-written guide's parameters ``{param-store name: unconstrained}``.
    """

    config: dict[str, Any]
    module: dict[str, torch.Tensor]
    optim_state: dict[str, Any]
    rng_torch: torch.Tensor
    rng_shuffle: torch.Tensor
    epoch: int
    history: dict[str, list[float]]
    guide_params: dict[str, torch.Tensor] = field(default_factory=dict)


# ================================================================================ BNN files
_File = TypeVar("_File", bound="PosteriorFile")


class PosteriorFile:
    """``save``/``load`` and fit checkpoints of a :class:`~pyro_bdl.BNN` (mixed into it), so
    that this module alone knows the layout of its files.
    """

    name: str
    prefix: str
    random_names: list[str]
    guide: Any
    guide_spec: Any
    prior: Any
    likelihood: Any
    input_shape: tuple[int, ...] | None
    temperature: float
    _net: nn.Module

    if TYPE_CHECKING:  # provided by the class this is mixed into (an nn.Module facade)

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        def state_dict(self) -> dict[str, torch.Tensor]: ...

        def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any: ...

        def ensure_guide(self, x: torch.Tensor) -> None: ...

        def mark_fitted(self) -> None: ...

    def _config(self) -> dict[str, Any]:
        guide = self.guide
        shape = self.input_shape
        if isinstance(guide, PyroGuide):
            initialized = guide.ran
            shape = guide.input_shape if shape is None else shape
        else:
            initialized = getattr(guide, "prototype_trace", None) is not None
        config: dict[str, Any] = {
            "pyro_bdl_version": __version__,
            "net_class": type(self._net).__qualname__,
            "prefix": self.prefix,
            "random_names": list(self.random_names),
            "prior": component_config(self.prior),
            "likelihood": component_config(self.likelihood),
            "guide": guide_config(self.guide_spec),
            "guide_initialized": initialized,
            "input_shape": None if shape is None else list(shape),
        }
        if self.temperature != 1.0:  # a tempered posterior (files without it: T = 1)
            config["temperature"] = self.temperature
        if isinstance(guide, PyroGuide):
            config["guide_params"] = list(guide.param_names)
        return config

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The module's state dict, and a hand-written guide's parameters."""
        tensors = dict(self.state_dict())
        if isinstance(self.guide, PyroGuide):
            params = self.guide.unconstrained_params()
            tensors.update({GUIDE_PARAM_KEY + k: v.detach() for k, v in params.items()})
        return tensors

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted posterior: prior, likelihood and guide configuration, every parameter.

        The file is plain data (see :mod:`pyro_bdl.serialization`): loading it never runs code.
        For a hand-written guide (:class:`~pyro_bdl.guides.PyroGuide`) it holds the values of
        every ``pyro.param`` the guide has used, not its code: :meth:`load` needs the guide.

        :param path: destination file.
        :return: the path written.

        Example::

            >>> import tempfile, pyro.distributions as dist
            >>> import torch
            >>> from torch import nn
            >>> from pyro_bdl import BNN, HomoskedasticGaussian
            >>> def make_net():
            ...     return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
            >>> bnn = BNN(make_net(), dist.Normal(0., 1.), HomoskedasticGaussian(scale=0.1))
            >>> x = torch.linspace(-1, 1, 10).unsqueeze(-1)
            >>> _ = bnn.fit(x, x[:, 0], epochs=2, progress=False)
            >>> folder = tempfile.TemporaryDirectory()
            >>> path = bnn.save(f"{folder.name}/posterior.pt")
            >>> again = BNN.load(path, net=make_net())
            >>> torch.equal(again.predict(x, 5, seed=0).samples, bnn.predict(x, 5, seed=0).samples)
            True
            >>> folder.cleanup()
        """
        guide = self.guide
        if not (isinstance(guide, PyroGuide) or callable(getattr(guide, "state_dict", None))):
            raise TypeError(
                "Expected a guide that is an nn.Module (an AutoGuide) or a PyroGuide to save its "
                f"parameters, but got {type(guide).__name__}."
            )
        config = self._config()
        if isinstance(guide, PyroGuide) and guide.param_names and config["input_shape"] is None:
            raise ValueError(  # load reruns the guide to create its parameters
                "Expected the input shape the guide was run on, but it is unknown: call "
                "bnn.predict or bnn.fit once before saving."
            )
        return write_checkpoint(path, {"bnn": config}, self._tensors())

    @classmethod
    def load(
        cls: type[_File],
        path: str | os.PathLike,
        net: nn.Module,
        *,
        prior: PriorLike | None = None,
        likelihood: Likelihood | None = None,
        guide: GuideLike = None,
        name: str | None = None,
    ) -> _File:
        """Load a posterior saved by :meth:`save` into ``net`` (a network of the same architecture).

        Built-in priors, likelihoods and guides are rebuilt from the file's configuration; pass
        ``prior``/``likelihood``/``guide`` for custom ones (the file names which). The network's
        parameters are overwritten with the saved ones. A hand-written guide must be passed
        again (``guide=my_guide``): it is run once, on zeros of the saved input shape, to create
        its parameters in Pyro's param store, which are then overwritten with the saved values
        (so a BNN sharing those parameter names sees them too). The loaded BNN counts as
        fitted.

        :param path: a file written by :meth:`save`.
        :param net: the network to load into.
        :return: the loaded BNN; with the same seed it predicts bitwise-identically.
        :raises CheckpointError: for a corrupted file, another format version, or non-plain data.
        :raises ValueError: if ``net`` does not match the saved architecture (the mismatched
            parameter is named), or a hand-written guide was saved and ``guide=`` is missing or
            does not create the saved parameters.

        Example::

            >>> bnn = BNN.load("posterior.pt", net=nn.Sequential(nn.Linear(1, 50), nn.Tanh(),
            ...                                                  nn.Linear(50, 1)))
            ... # doctest: +SKIP
        """
        config, tensors = read_posterior(path)
        cfg = config["bnn"]
        check_architecture(net, tensors)
        random = [str(n) for n in cfg["random_names"]]
        prior, likelihood, guide, include = rebuild_components(
            cfg, prior=prior, likelihood=likelihood, guide=guide
        )
        bnn = cls(
            net,
            prior,
            likelihood,
            guide,
            include=include,
            prefix=str(cfg["prefix"]),
            name=name,
            temperature=float(cfg.get("temperature", 1.0)),
        )
        if bnn.random_names != random:
            raise ValueError(
                f"Expected the prior to make {random} random, as saved, but it makes "
                f"{bnn.random_names} random."
            )
        saved_params = guide_params(tensors)
        if saved_params and not isinstance(bnn.guide, PyroGuide):
            raise ValueError(
                f"Expected the hand-written guide the posterior was saved with (it has the "
                f"parameters {sorted(saved_params)}), but got {type(bnn.guide).__name__}: pass "
                "BNN.load(path, net, guide=my_guide)."
            )
        if cfg.get("guide_initialized"):
            param = next(net.parameters())
            zeros = torch.zeros((1, *cfg["input_shape"]), dtype=param.dtype, device=param.device)
            bnn.ensure_guide(zeros)
            bnn.input_shape = tuple(cfg["input_shape"])
        bnn._load_module_state(tensors)
        bnn.mark_fitted()
        return bnn

    def _load_module_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load the module part of a checkpoint (not the optimiser or RNG state of a fit), and a
        hand-written guide's parameters."""
        missing, unexpected = self.load_state_dict(module_state(tensors), strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"The checkpoint does not fit this model: missing {sorted(missing)}, unexpected "
                f"{sorted(unexpected)}."
            )
        if isinstance(self.guide, PyroGuide):
            self.guide.load_params(guide_params(tensors))

    def _write_fit_checkpoint(
        self, path: str | os.PathLike | None, state: FitState, optim: pyro.optim.PyroOptim
    ) -> None:
        assert path is not None  # checked with checkpoint_every
        config, tensors = {"bnn": self._config()}, self._tensors()
        write_fit_state(path, config, tensors, optim, f"{self.name}.", state)

    def _resume(
        self,
        path: str | os.PathLike,
        optim: pyro.optim.PyroOptim,
        state: FitState,
        example: torch.Tensor,
    ) -> None:
        self.ensure_guide(example)  # a lazy guide has its parameters before they are loaded
        saved = read_fit_state(path, optim, f"{self.name}.", state)
        self._load_module_state(
            {**saved.module, **{GUIDE_PARAM_KEY + k: v for k, v in saved.guide_params.items()}}
        )
