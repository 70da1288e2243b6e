"""Time one SVI step and prediction against plain PyTorch and Pyro peers, side by side.

Every configuration is timed in one process, in interleaved rounds (each round runs every
contender once, in a shuffled order), and reported as the median over rounds and as a ratio to
the plain PyTorch contender of the same table (one Adam step of the deterministic network:
forward, backward, update; one plain epoch; a plain predictive loop).

    python benchmarks/svi_step.py --threads 1     # every net and table (long: tens of minutes)
    python benchmarks/svi_step.py --quick         # small net, batch 128, few rounds (CI)
    python benchmarks/svi_step.py --nets lenet5 lstm --tables step predict --rounds 15
    python benchmarks/svi_step.py --nets 1-50-1 --tables targets   # the issue-19 target rows
    python benchmarks/svi_step.py --device cuda   # the same tables on a GPU (synchronised timing)
    python benchmarks/svi_step.py --output bench.md

Nets: two MLPs (784-400-400-10, 1-50-1), LeNet-5 on 28 x 28 inputs, an LSTM (8 -> 32, sequences
of 10, + Linear) and a 2-layer ``nn.TransformerEncoder`` (d = 32, 4 heads, sequences of 10).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroSample
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.guides import BernoulliDropout, ConcreteDropout
from pyro_bdl.inference.elbo import TraceFreeELBO, make_objective
from pyro_bdl.inference.loop import Batch, FitResult, FitState
from pyro_bdl.inference.loop import step as engine_step
from pyro_bdl.inference.optim import Optimizer

Row = tuple[str, float, float]


def mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def lenet5(dropout: float = 0.0) -> nn.Sequential:
    """LeNet-5 (ReLU, max pooling) for 1 x 28 x 28 inputs, 10 classes; the head is ``"head"``."""

    def fc(a: int, b: int) -> nn.Module:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(a, b)) if dropout else nn.Linear(a, b)

    return nn.Sequential(
        OrderedDict(
            [
                ("c1", nn.Conv2d(1, 6, 5, padding=2)),
                ("a1", nn.ReLU()),
                ("p1", nn.MaxPool2d(2)),
                ("c3", nn.Conv2d(6, 16, 5)),
                ("a3", nn.ReLU()),
                ("p3", nn.MaxPool2d(2)),
                ("flat", nn.Flatten()),
                ("f5", fc(400, 120)),
                ("a5", nn.ReLU()),
                ("f6", fc(120, 84)),
                ("a6", nn.ReLU()),
                ("head", fc(84, 10)),
            ]
        )
    )


class LSTMNet(nn.Module):
    """LSTM(8 -> 32) over sequences of 10, then a Linear head on the last state (regression)."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.drop(out[:, -1]))


class TransformerNet(nn.Module):
    """Input projection 8 -> 32, a 2-layer ``nn.TransformerEncoder`` (d = 32, 4 heads,
    feed-forward 64), mean pooling over the 10 positions and a Linear head (10 classes)."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


class NetSpec(NamedTuple):
    """A benchmark network: ``build(dropout)``, one input's shape, the task, its defaults."""

    build: Callable[[float], nn.Module]
    shape: tuple[int, ...]
    task: str
    classes: int
    batches: tuple[int, ...]
    predict: tuple[int, int]  # (S, N) of the prediction table
    head: str  # prefix of the last layer's parameters (the last-layer-only rows)


NETS = {
    "784-400-400-10": NetSpec(
        lambda d: mlp((784, 400, 400, 10), d), (784,), "classification", 10, (128, 1000),
        (100, 1000), "4.",
    ),
    "1-50-1": NetSpec(
        lambda d: mlp((1, 50, 1), d), (1,), "regression", 1, (128, 1000), (100, 1000), "2.",
    ),
    "lenet5": NetSpec(lenet5, (1, 28, 28), "classification", 10, (128,), (50, 500), "head."),
    "lstm": NetSpec(LSTMNet, (10, 8), "regression", 1, (128,), (20, 500), "head."),
    "transformer": NetSpec(
        TransformerNet, (10, 8), "classification", 10, (128,), (20, 500), "head.",
    ),
}  # fmt: skip
TABLES = ("step", "predict", "targets")
DEVICE = torch.device("cpu")
#: the clock of every timing: wall time, or the calling thread's CPU time (``--clock cpu``: on a
#: machine shared with other jobs, a preempted call is not charged for the time it waited)
CLOCK: Callable[[], float] = time.perf_counter


def make_data(spec: NetSpec, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn((n,) + spec.shape, generator=g)
    if spec.task == "classification":
        y = torch.randint(0, spec.classes, (n,), generator=g)
    else:
        y = torch.randn(n, generator=g)
    return x.to(DEVICE), y.to(DEVICE)


def build(spec: NetSpec, dropout: float = 0.0) -> nn.Module:
    return spec.build(dropout).to(DEVICE)


def freeze_body(net: nn.Module, head: str) -> nn.Module:
    """A "pre-trained" body: every parameter outside the head stops taking gradients."""
    for name, p in net.named_parameters():
        if not name.startswith(head):
            p.requires_grad_(False)
    return net


def plain_step(
    spec: NetSpec, x: torch.Tensor, y: torch.Tensor, dropout: float = 0.0, frozen: bool = False
) -> Callable[[], None]:
    net = build(spec, dropout).train()
    if frozen:
        freeze_body(net, spec.head)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss() if spec.task == "classification" else nn.MSELoss()

    def step() -> None:
        out = net(x)
        loss = loss_fn(out, y) if spec.task == "classification" else loss_fn(out.squeeze(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def plain_epoch(spec: NetSpec, x: torch.Tensor, y: torch.Tensor, batch: int) -> Callable[[], None]:
    """One plain PyTorch epoch: a shuffled order, then an Adam step per minibatch."""
    net = build(spec).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss() if spec.task == "classification" else nn.MSELoss()

    def epoch() -> None:
        order = torch.randperm(len(x), device=x.device)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            out = net(x[idx])
            yb = y[idx]
            loss = loss_fn(out, yb) if spec.task == "classification" else loss_fn(out[:, 0], yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch


def likelihood(task: str):
    return Categorical() if task == "classification" else HomoskedasticGaussian(1.0)


def make_bnn(spec: NetSpec, guide, include=None, frozen: bool = False) -> BNN:
    net = build(spec)
    if frozen:
        freeze_body(net, spec.head)
    return BNN(net, dist.Normal(0.0, 1.0), likelihood(spec.task), guide=guide, include=include)


def bnn_step(
    spec: NetSpec, x, y, guide, num_particles=1, include=None, frozen=False
) -> Callable[[], None]:
    bnn = make_bnn(spec, guide, include, frozen)
    optim = pyro.optim.Adam({"lr": 1e-3})
    n = 10 * len(x)
    bnn.fit(x, y, epochs=1, optim=optim, progress=False)  # build the guide, warm up
    # what one step inside fit does, through the public engine: the objective fit would use
    # (trace-free when possible), its optimiser (fused when possible), one step
    objective = make_objective(
        bnn.bayesian_model, bnn.guide, (x[:2], y[:2]), n, handler=bnn.estimator,
        num_particles=num_particles,
    )  # fmt: skip
    fused = isinstance(objective, TraceFreeELBO)
    optimizer = Optimizer(optim, objective.params if fused else None)
    state = FitState(0, FitResult(n), torch.Generator())
    batch = Batch(x, y, len(x))

    def step() -> None:
        engine_step(state, batch, objective, optimizer, dataset_size=n, num_particles=num_particles)

    return step


def pyro_autonormal_step(spec: NetSpec, x, y) -> Callable[[], None] | None:
    """The peer: a PyroModule net with PyroSample priors, AutoNormal, Trace_ELBO (``None`` where
    Pyro cannot run the net with sampled parameters, e.g. ``nn.LSTM``'s flattened weights)."""
    pyro.clear_param_store()  # AutoNormal's parameter names repeat between the nets
    net = build(spec)
    pyro.nn.module.to_pyro_module_(net)
    for _, m in net.named_modules():
        for name, p in list(m.named_parameters(recurse=False)):
            prior = dist.Normal(torch.zeros((), device=DEVICE), 1.0)
            setattr(m, name, PyroSample(prior.expand(p.shape).to_event(p.dim())))
    n = 10 * len(x)

    def model(x, y=None):
        out = net(x)
        with pyro.plate("data", n, subsample=torch.arange(len(x), device=x.device)):
            if spec.task == "classification":
                pyro.sample("obs", dist.Categorical(logits=out), obs=y)
            else:
                pyro.sample("obs", dist.Normal(out.squeeze(-1), 1.0), obs=y)

    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    try:
        svi.step(x, y)
    except (RuntimeError, TypeError, AttributeError, ValueError):
        return None
    return lambda: svi.step(x, y)


def bayesian_torch_step(spec: NetSpec, x, y) -> Callable[[], None] | None:
    """The peer bayesian-torch (Reparameterization layers, KL in closed form), if installed.

    ``pip install bayesian-torch`` would replace torch 2.13 by a CUDA build; ``pip install
    --no-deps bayesian-torch`` adds it without touching torch.
    """
    try:
        from bayesian_torch.models.dnn_to_bnn import dnn_to_bnn, get_kl_loss
    except ImportError:
        return None
    net = spec.build(0.0)
    prior = {
        "prior_mu": 0.0,
        "prior_sigma": 1.0,
        "posterior_mu_init": 0.0,
        "posterior_rho_init": -4.6,
        "type": "Reparameterization",
        "moped_enable": False,
    }
    try:
        dnn_to_bnn(net, prior)
        net.to(DEVICE)
        net(x[:2])
    except (RuntimeError, TypeError, AttributeError, ValueError):
        return None
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = 10 * len(x)

    def step() -> None:
        out = net(x)
        if spec.task == "classification":
            nll = nn.functional.cross_entropy(out, y, reduction="sum")
        else:
            nll = 0.5 * ((out.squeeze(-1) - y) ** 2).sum()
        loss = nll * (n / len(x)) + get_kl_loss(net)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def loop_predict(net: nn.Module, draws: dict, x: torch.Tensor) -> torch.Tensor:
    """Plain torch: one functional_call per pre-drawn weight sample (forward only)."""
    s = next(iter(draws.values())).shape[0]
    with torch.no_grad():
        return torch.stack(
            [
                torch.func.functional_call(net, {k: v[i] for k, v in draws.items()}, (x,))
                for i in range(s)
            ]
        )


def loop_predict_sampling(
    net: nn.Module, loc_scale: dict, x: torch.Tensor, num_samples: int
) -> torch.Tensor:
    """Plain torch MC predictive of a mean-field posterior: draw W ~ q, run the net, S times."""
    with torch.no_grad():
        return torch.stack(
            [
                torch.func.functional_call(
                    net, {k: m + s * torch.randn_like(m) for k, (m, s) in loc_scale.items()}, (x,)
                )
                for _ in range(num_samples)
            ]
        )


_PEAK_SCRIPT = """
import sys, torch, pyro.distributions as dist
sys.path.insert(0, {here!r})
import svi_step as b
torch.set_num_threads(1)
spec = b.NETS[{net!r}]
x, y = b.make_data(spec, {n})
bnn = b.make_bnn(spec, b.MeanFieldNormal())
bnn.fit(x, y, epochs=1, progress=False)

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) restarts at the current resident size
before = status("VmRSS")
pred = bnn.predict(x, num_samples={s})
print((status("VmHWM") - before) / 2**20)
"""


def peak_extra_mb(net_name: str, n: int, num_samples: int) -> float:
    """Peak resident memory ``BNN.predict`` adds, measured in a fresh process (Linux, CPU)."""
    import subprocess
    import sys
    from pathlib import Path

    script = _PEAK_SCRIPT.format(
        here=str(Path(__file__).resolve().parent), net=net_name, n=n, s=num_samples
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return math.nan


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def time_interleaved(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    names = list(contenders)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(rounds):
        random.shuffle(names)
        for k in names:
            _sync()
            t = CLOCK()
            contenders[k]()
            _sync()
            times[k].append(CLOCK() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _rows(contenders: dict, rounds: int, base: str) -> list[Row]:
    med = time_interleaved({k: v for k, v in contenders.items() if v is not None}, rounds)
    rows = [(k, med[k] * 1e3, med[k] / med[base]) for k in contenders if k in med]
    rows += [
        (f"{k}: does not run on this net", math.nan, math.nan) for k in contenders if k not in med
    ]
    return rows


def _dropout_step(spec: NetSpec, x, y, builder) -> Callable[[], None]:
    """A dropout guide's step: per-example masks where every random weight feeds an nn.Linear or
    nn.ConvNd, else (LSTM, attention) one mask per particle (``estimator="per_particle"``)."""
    try:
        return bnn_step(spec, x, y, builder(0.1))
    except ValueError:
        return bnn_step(spec, x, y, builder(0.1, estimator="per_particle"))


def bench_steps(net_name: str, batch: int, rounds: int) -> list[Row]:
    spec = NETS[net_name]
    x, y = make_data(spec, batch)
    contenders: dict[str, Callable[[], None] | None] = {
        "plain torch step": plain_step(spec, x, y),
        "plain torch step, dropout 0.1": plain_step(spec, x, y, dropout=0.1),
        "MeanFieldNormal": bnn_step(spec, x, y, MeanFieldNormal()),
        "MeanFieldNormal, 8 vectorised particles": bnn_step(spec, x, y, MeanFieldNormal(), 8),
        "MeanFieldNormal, local reparameterization (opt-in)": bnn_step(
            spec, x, y, MeanFieldNormal(estimator="local_reparameterization")
        ),
        "MeanFieldNormal, flipout (opt-in)": bnn_step(
            spec, x, y, MeanFieldNormal(estimator="flipout")
        ),
        "BernoulliDropout(0.1)": _dropout_step(spec, x, y, BernoulliDropout),
        "ConcreteDropout": _dropout_step(spec, x, y, ConcreteDropout),
        "Pyro Trace_ELBO + AutoNormal (peer)": pyro_autonormal_step(spec, x, y),
    }
    peer = bayesian_torch_step(spec, x, y)
    if peer is not None:
        contenders["bayesian-torch Reparameterization (peer)"] = peer
    return _rows(contenders, rounds, "plain torch step")


def bench_last_layer(net_name: str, batch: int, rounds: int) -> list[Row]:
    """A frozen "pre-trained" body and a Bayesian head (``include=`` the head) vs plain steps."""
    spec = NETS[net_name]
    x, y = make_data(spec, batch)
    head = spec.head

    def include(name: str, p: nn.Parameter) -> bool:
        return name.startswith(head)

    contenders: dict[str, Callable[[], None] | None] = {
        "plain torch step, body frozen": plain_step(spec, x, y, frozen=True),
        "plain torch step, all trained": plain_step(spec, x, y),
        "MeanFieldNormal on the head, body frozen": bnn_step(
            spec, x, y, MeanFieldNormal(), include=include, frozen=True
        ),
        "MeanFieldNormal on the head, body trained (point estimate)": bnn_step(
            spec, x, y, MeanFieldNormal(), include=include
        ),
    }
    return _rows(contenders, rounds, "plain torch step, body frozen")


def bench_fit(net_name: str, n: int, batch: int, rounds: int) -> list[Row]:
    """One ``BNN.fit(epochs=1)`` call (setup included) vs one plain epoch."""
    spec = NETS[net_name]
    x, y = make_data(spec, n)
    bnn = make_bnn(spec, MeanFieldNormal())
    bnn.fit(x, y, epochs=1, batch_size=batch, progress=False)  # the guide exists, as in a loop
    contenders: dict[str, Callable[[], None] | None] = {
        "plain torch epoch (shuffled, Adam)": plain_epoch(spec, x, y, batch),
        "BNN.fit(epochs=1), MeanFieldNormal": lambda: bnn.fit(
            x, y, epochs=1, batch_size=batch, progress=False
        ),
    }
    return _rows(contenders, rounds, "plain torch epoch (shuffled, Adam)")


def bench_predict(net_name: str, n: int, num_samples: int, rounds: int, peak: bool) -> list[Row]:
    spec = NETS[net_name]
    x, y = make_data(spec, n)
    bnn = make_bnn(spec, MeanFieldNormal())
    bnn.fit(x, y, epochs=1, progress=False)
    net = bnn.net.eval()  # predict runs the net in evaluation mode; so do the loops
    loc_scale = {site: (m.detach(), s.detach()) for site, (m, s) in bnn.guide.loc_scale().items()}
    draws = {
        k: m + s * torch.randn((num_samples,) + m.shape, device=DEVICE)
        for k, (m, s) in loc_scale.items()
    }
    pyro_pred = Predictive(bnn.model, guide=bnn.guide, num_samples=num_samples)
    contenders: dict[str, Callable[[], None] | None] = {
        "plain torch loop, drawing W ~ q": lambda: loop_predict_sampling(
            net, loc_scale, x, num_samples
        ),
        "plain torch loop, weights pre-drawn (forward only)": lambda: loop_predict(net, draws, x),
        "BNN.predict": lambda: bnn.predict(x, num_samples=num_samples),
        "Pyro Predictive (sequential)": lambda: pyro_pred(x),
    }
    rows = _rows(contenders, rounds, "plain torch loop, drawing W ~ q")
    if peak and DEVICE.type == "cpu":
        mb = peak_extra_mb(net_name, n, num_samples)
        rows.append(
            (
                f"BNN.predict peak extra resident memory, fresh process (MB): {mb:.0f}",
                math.nan,
                math.nan,
            )
        )
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats(DEVICE)
        before = torch.cuda.memory_allocated(DEVICE)
        bnn.predict(x, num_samples=num_samples)
        mb = (torch.cuda.max_memory_allocated(DEVICE) - before) / 2**20
        rows.append((f"BNN.predict peak extra CUDA memory (MB): {mb:.0f}", math.nan, math.nan))
    return rows


def table(title: str, rows: list[Row]) -> str:
    lines = [f"### {title}", "", "| contender | median ms | ratio |", "|---|---|---|"]
    for name, ms, ratio in rows:
        if ms != ms:  # nan: a note row
            lines.append(f"| {name} | | |")
        else:
            lines.append(f"| {name} | {ms:.2f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def _net_tables(net: str, args: argparse.Namespace) -> list[str]:
    spec = NETS[net]
    out = []
    if "step" in args.tables:
        for batch in args.batches or spec.batches:
            rows = bench_steps(net, batch, args.rounds)
            out.append(table(f"One SVI step, {net}, batch {batch}", rows))
    if "predict" in args.tables:
        s, n = (100, 100) if args.quick else spec.predict
        rows = bench_predict(net, n, s, max(3, args.rounds // 3), peak=not args.quick)
        out.append(table(f"Prediction, {net}, S = {s}, N = {n}", rows))
    if "targets" in args.tables:
        n = 1000 if net == "1-50-1" else 1024
        rows = bench_fit(net, n, 128, args.rounds)
        out.append(
            table(f"One fit(epochs=1) call vs one plain epoch, {net}, N = {n}, batch 128", rows)
        )
        if not net.startswith(("784", "1-50")):
            rows = bench_last_layer(net, 128, args.rounds)
            out.append(table(f"Last layer only (include= the head), {net}, batch 128", rows))
    return out


def main(argv: Sequence[str] | None = None) -> str:
    """Run the benchmark; print and return the markdown tables."""
    global DEVICE, CLOCK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small net, batch 128, 5 rounds")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds per table")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=TABLES)
    parser.add_argument("--batches", nargs="+", type=int, default=None, help="step batch sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this thread's CPU time (a shared machine; CPU only, 1 thread)",
    )
    parser.add_argument("--output", default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.nets, args.batches, args.rounds = ["1-50-1"], [128], 5
        args.tables = ["step", "predict"]
    if args.threads:
        torch.set_num_threads(args.threads)
    DEVICE = torch.device(args.device)
    if args.clock == "cpu" and (DEVICE.type != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu times the calling thread: use it with --threads 1 on CPU")
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    out = [
        f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}, "
        f"device {DEVICE}, clock {args.clock}\n"
    ]
    for net in args.nets:
        out.extend(_net_tables(net, args))
    text = "\n".join(out)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return text


if __name__ == "__main__":
    main()
