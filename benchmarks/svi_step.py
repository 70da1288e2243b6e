"""Time one SVI step and prediction against plain PyTorch and Pyro peers, side by side.

Every configuration is timed in one process, in interleaved rounds (each round runs every
contender once, in a shuffled order), and reported as the median over rounds and as a ratio to
the plain PyTorch Adam step of the same deterministic network (forward, backward, update).

    python benchmarks/svi_step.py                 # both nets, batches 128 and 1000
    python benchmarks/svi_step.py --quick         # small net, batch 128, few rounds (CI)
    python benchmarks/svi_step.py --output bench.md
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample
from torch import nn

from pyro_bdl import BNN, Categorical, HomoskedasticGaussian, MeanFieldNormal
from pyro_bdl.guides import BernoulliDropout, ConcreteDropout
from pyro_bdl.inference.elbo import TraceFreeELBO, make_objective
from pyro_bdl.inference.loop import Batch, FitResult, FitState
from pyro_bdl.inference.loop import step as engine_step
from pyro_bdl.inference.optim import Optimizer

NETS = {
    "784-400-400-10": ((784, 400, 400, 10), "classification"),
    "1-50-1": ((1, 50, 1), "regression"),
}


def mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_data(sizes: Sequence[int], task: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, sizes[0], generator=g)
    if task == "classification":
        return x, torch.randint(0, sizes[-1], (n,), generator=g)
    return x, torch.randn(n, generator=g)


def plain_step(sizes, task, x, y, dropout=0.0) -> Callable[[], None]:
    net = mlp(sizes, dropout).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()

    def step() -> None:
        out = net(x)
        loss = loss_fn(out, y) if task == "classification" else loss_fn(out.squeeze(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def likelihood(task: str):
    return Categorical() if task == "classification" else HomoskedasticGaussian(1.0)


def bnn_step(sizes, task, x, y, guide, num_particles=1) -> Callable[[], None]:
    bnn = BNN(mlp(sizes), dist.Normal(0.0, 1.0), likelihood(task), guide=guide)
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


def pyro_autonormal_step(sizes, task, x, y) -> Callable[[], None]:
    """The peer: a PyroModule net with PyroSample priors, AutoNormal, Trace_ELBO."""
    pyro.clear_param_store()  # AutoNormal's parameter names repeat between the nets
    net = PyroModule[nn.Sequential](*mlp(sizes))
    for m in net.modules():
        if isinstance(m, nn.Linear):
            m.__class__ = PyroModule[nn.Linear]
            m._pyro_samples = {}
    pyro.nn.module.to_pyro_module_(net)
    for _, m in net.named_modules():
        for name, p in list(m.named_parameters(recurse=False)):
            setattr(m, name, PyroSample(dist.Normal(0.0, 1.0).expand(p.shape).to_event(p.dim())))
    n = 10 * len(x)

    def model(x, y=None):
        out = net(x)
        with pyro.plate("data", n, subsample=torch.arange(len(x))):
            if task == "classification":
                pyro.sample("obs", dist.Categorical(logits=out), obs=y)
            else:
                pyro.sample("obs", dist.Normal(out.squeeze(-1), 1.0), obs=y)

    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    svi.step(x, y)
    return lambda: svi.step(x, y)


def bayesian_torch_step(sizes, task, x, y) -> Callable[[], None] | None:
    """The peer bayesian-torch (Reparameterization layers, KL in closed form), if installed.

    ``pip install bayesian-torch`` would replace torch 2.13 by a CUDA build; ``pip install
    --no-deps bayesian-torch`` adds it without touching torch.
    """
    try:
        from bayesian_torch.models.dnn_to_bnn import dnn_to_bnn, get_kl_loss
    except ImportError:
        return None
    net = mlp(sizes)
    prior = {
        "prior_mu": 0.0,
        "prior_sigma": 1.0,
        "posterior_mu_init": 0.0,
        "posterior_rho_init": -4.6,
        "type": "Reparameterization",
        "moped_enable": False,
    }
    dnn_to_bnn(net, prior)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = 10 * len(x)

    def step() -> None:
        out = net(x)
        if task == "classification":
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
sizes, task = b.NETS[{net!r}]
x, y = b.make_data(sizes, task, {n})
bnn = b.BNN(b.mlp(sizes), dist.Normal(0.0, 1.0), b.likelihood(task), guide=b.MeanFieldNormal())
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
    """Peak resident memory ``BNN.predict`` adds, measured in a fresh process (Linux only)."""
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


def time_interleaved(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    names = list(contenders)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(rounds):
        random.shuffle(names)
        for k in names:
            t = time.perf_counter()
            contenders[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_steps(net_name: str, batch: int, rounds: int) -> list[tuple[str, float, float]]:
    sizes, task = NETS[net_name]
    x, y = make_data(sizes, task, batch)
    contenders = {
        "plain torch step": plain_step(sizes, task, x, y),
        "plain torch step, dropout 0.1": plain_step(sizes, task, x, y, dropout=0.1),
        "MeanFieldNormal": bnn_step(sizes, task, x, y, MeanFieldNormal()),
        "MeanFieldNormal, 8 vectorised particles": bnn_step(
            sizes, task, x, y, MeanFieldNormal(), 8
        ),
        "MeanFieldNormal, local reparameterization (opt-in)": bnn_step(
            sizes, task, x, y, MeanFieldNormal(estimator="local_reparameterization")
        ),
        "MeanFieldNormal, flipout (opt-in)": bnn_step(
            sizes, task, x, y, MeanFieldNormal(estimator="flipout")
        ),
        "BernoulliDropout(0.1)": bnn_step(sizes, task, x, y, BernoulliDropout(0.1)),
        "ConcreteDropout": bnn_step(sizes, task, x, y, ConcreteDropout(0.1)),
        "Pyro Trace_ELBO + AutoNormal (peer)": pyro_autonormal_step(sizes, task, x, y),
    }
    peer = bayesian_torch_step(sizes, task, x, y)
    if peer is not None:
        contenders["bayesian-torch Reparameterization (peer)"] = peer
    med = time_interleaved(contenders, rounds)
    base = med["plain torch step"]
    return [(k, med[k] * 1e3, med[k] / base) for k in contenders]


def bench_predict(
    net_name: str, n: int, num_samples: int, rounds: int
) -> list[tuple[str, float, float]]:
    sizes, task = NETS[net_name]
    x, y = make_data(sizes, task, n)
    bnn = BNN(mlp(sizes), dist.Normal(0.0, 1.0), likelihood(task), guide=MeanFieldNormal())
    bnn.fit(x, y, epochs=1, progress=False)
    loc_scale = {site: (m.detach(), s.detach()) for site, (m, s) in bnn.guide.loc_scale().items()}
    draws = {k: m + s * torch.randn((num_samples,) + m.shape) for k, (m, s) in loc_scale.items()}
    pyro_pred = Predictive(bnn.model, guide=bnn.guide, num_samples=num_samples)
    contenders = {
        "plain torch loop, drawing W ~ q": lambda: loop_predict_sampling(
            bnn.net, loc_scale, x, num_samples
        ),
        "plain torch loop, weights pre-drawn (forward only)": lambda: loop_predict(
            bnn.net, draws, x
        ),
        "BNN.predict": lambda: bnn.predict(x, num_samples=num_samples),
        "Pyro Predictive (sequential)": lambda: pyro_pred(x),
    }
    med = time_interleaved(contenders, rounds)
    base = med["plain torch loop, drawing W ~ q"]
    rows = [(k, med[k] * 1e3, med[k] / base) for k in contenders]
    peak = peak_extra_mb(net_name, n, num_samples)
    rows.append(
        (
            f"BNN.predict peak extra resident memory, fresh process (MB): {peak:.0f}",
            math.nan,
            math.nan,
        )
    )
    return rows


def table(title: str, rows: list[tuple[str, float, float]]) -> str:
    lines = [f"### {title}", "", "| contender | median ms | ratio |", "|---|---|---|"]
    for name, ms, ratio in rows:
        if ms != ms:  # nan: a note row
            lines.append(f"| {name} | | |")
        else:
            lines.append(f"| {name} | {ms:.2f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    """Run the benchmark; print and return the markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small net, batch 128, 5 rounds")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds per table")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 1000])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--output", default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.nets, args.batches, args.rounds = ["1-50-1"], [128], 5
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = [
        f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}\n"
    ]
    for net in args.nets:
        for batch in args.batches:
            out.append(
                table(f"One SVI step, {net}, batch {batch}", bench_steps(net, batch, args.rounds))
            )
        n = 100 if args.quick else 1000
        out.append(
            table(
                f"Prediction, {net}, S = 100, N = {n}",
                bench_predict(net, n, 100, max(3, args.rounds // 3)),
            )
        )
    text = "\n".join(out)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return text


if __name__ == "__main__":
    main()
