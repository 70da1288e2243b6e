"""Data-parallel SVI of a Bayesian MLP over ``torch.distributed``, checked against one process.

Every rank holds the whole (synthetic) regression data set and the same BNN; each global
minibatch is split across the ranks, the gradients are all-reduced, and every rank takes the same
step (:func:`pyro_bdl.distributed.fit_distributed`). Posterior draws for the test set are then
split across the ranks and gathered (:func:`pyro_bdl.distributed.predict_distributed`). Rank 0
prints the throughput and, with ``--check``, how far the result is from ``BNN.fit`` in one
process with the same seed and minibatches (it should be rounding error).

The backend follows the hardware: NCCL with one GPU per process when CUDA is available, gloo on
CPU otherwise; the script is the same.

Run::

    torchrun --nproc_per_node=2 examples/distributed_svi.py --quick    # CPU, gloo, seconds
    torchrun --nproc_per_node=4 examples/distributed_svi.py            # 4 GPUs on one node
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d \\
        --rdzv-endpoint=$HOST:29500 examples/distributed_svi.py          # 2 nodes x 8 GPUs
    python examples/distributed_svi.py --quick                          # one process
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.distributed as tdist
from torch import nn

from pyro_bdl import BNN, HomoskedasticGaussian
from pyro_bdl.distributed import fit_distributed, predict_distributed
from pyro_bdl.guides import MeanFieldNormal
from pyro_bdl.metrics import rmse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every budget to a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="data, initialisation and SVI seed")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    parser.add_argument("--num-data", type=int, default=20000, help="training points N")
    parser.add_argument("--features", type=int, default=16, help="input dimension")
    parser.add_argument("--hidden", type=int, default=128, help="width of the two hidden layers")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the data")
    parser.add_argument("--batch-size", type=int, default=1000, help="GLOBAL minibatch size")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--num-samples", type=int, default=100, help="posterior draws to predict")
    parser.add_argument("--float64", action="store_true", help="double precision")
    parser.add_argument(
        "--check", action="store_true", help="also fit in one process and compare (on by --quick)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds a rank waits for a silent peer"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.num_data, args.hidden, args.epochs = 400, 16, 2
        args.batch_size, args.num_samples, args.check = 100, 20, True
        args.float64 = True
    for name in ("num_data", "features", "hidden", "epochs", "batch_size", "num_samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def setup(timeout: float) -> torch.device:
    """Join the process group torchrun describes (or make a group of one) and pick a device.

    A group that already exists (the caller made it) is used as it is.
    """
    cuda = torch.cuda.is_available()
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        backend = "nccl" if cuda else "gloo"
        wait = datetime.timedelta(seconds=timeout)
        if "RANK" in os.environ:  # launched by torchrun: rank, world size and rendezvous in env
            tdist.init_process_group(backend, timeout=wait)
        else:
            tdist.init_process_group(
                backend, store=tdist.HashStore(), rank=0, world_size=1, timeout=wait
            )
    return device


def make_data(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> tuple:
    """A smooth nonlinear regression problem, identical on every rank (seeded)."""
    g = torch.Generator().manual_seed(args.seed)
    n_test = max(args.num_data // 10, 10)
    x = torch.randn(args.num_data + n_test, args.features, generator=g, dtype=dtype)
    w = torch.randn(args.features, generator=g, dtype=dtype) / args.features**0.5
    y = torch.sin(2 * x @ w) + 0.1 * torch.randn(len(x), generator=g, dtype=dtype)
    x, y = x.to(device), y.to(device)
    return x[: args.num_data], y[: args.num_data], x[args.num_data :], y[args.num_data :]


def make_bnn(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, name: str) -> BNN:
    torch.manual_seed(args.seed)  # the same initial network on every rank
    h = args.hidden
    net = nn.Sequential(
        nn.Linear(args.features, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1)
    ).to(device=device, dtype=dtype)
    return BNN(
        net,
        dist.Normal(torch.tensor(0.0, device=device), torch.tensor(1.0, device=device)),
        HomoskedasticGaussian(init_scale=0.5),
        guide=MeanFieldNormal(init_scale=1e-3),
        name=name,
    )


class EpochClock:
    """A fit callback that notes when each epoch ends (throughput without the warm-up epoch)."""

    def __init__(self) -> None:
        self.times: list[float] = [time.perf_counter()]

    def __call__(self, epoch: int, result: Any) -> None:
        self.times.append(time.perf_counter())

    def examples_per_second(self, num_data: int) -> float:
        """Over the epochs after the first (the first one also pays for warm-up)."""
        times = self.times[1:] if len(self.times) > 2 else self.times
        return (len(times) - 1) * num_data / (times[-1] - times[0])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Fit and predict across the ranks; return (and print on rank 0) what was measured."""
    args = parse_args(argv)
    owned = not tdist.is_initialized()
    device = setup(args.timeout)
    try:
        return run(args, device)
    finally:
        if owned:  # leave the caller's group alone, close ours
            tdist.destroy_process_group()


def run(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The distributed fit and prediction, on a group that is already set up."""
    rank, world = tdist.get_rank(), tdist.get_world_size()
    dtype = torch.float64 if args.float64 else torch.float32
    x, y, x_test, y_test = make_data(args, device, dtype)
    fit_kwargs = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "progress": False,
    }

    pyro.clear_param_store()
    bnn = make_bnn(args, device, dtype, "distributed")
    clock = EpochClock()
    result = fit_distributed(bnn, x, y, callback=clock, **fit_kwargs)
    start = time.perf_counter()
    pred = predict_distributed(bnn, x_test, args.num_samples, seed=args.seed)
    predict_seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "world_size": world,
        "backend": str(tdist.get_backend()),
        "device": str(device),
        "steps": result.num_steps,
        "fit_seconds": result.seconds,
        "examples_per_second": clock.examples_per_second(args.num_data),
        "elbo_per_datum": result.elbo[-1],
        "test_rmse": float(rmse(pred, y_test)),
        "predict_seconds": predict_seconds,
    }
    if args.check:  # the same fit in this process alone: the same steps up to rounding
        single = make_bnn(args, device, dtype, "single")
        single_clock = EpochClock()
        reference = single.fit(x, y, callback=single_clock, **fit_kwargs)
        want, got = single.state_dict(), bnn.state_dict()
        diff = max(float((want[k] - got[k]).abs().max()) for k in want)
        tol = 1e-9 if dtype == torch.float64 else 1e-3
        out["max_parameter_difference"] = diff
        out["single_process_seconds"] = reference.seconds
        out["single_process_examples_per_second"] = single_clock.examples_per_second(args.num_data)
        out["matches"] = diff < tol and abs(reference.elbo[-1] - result.elbo[-1]) < tol * 10
    if rank == 0:
        print(
            f"world_size={world} backend={out['backend']} device={out['device']} "
            f"N={args.num_data} batch={args.batch_size} hidden={args.hidden} "
            f"dtype={str(dtype).removeprefix('torch.')}"
        )
        print(
            f"fit: {out['steps']} steps in {out['fit_seconds']:.2f} s, "
            f"{out['examples_per_second']:.0f} examples/s after the first epoch, "
            f"ELBO/N {out['elbo_per_datum']:.4f}"
        )
        print(
            f"predict: {args.num_samples} draws for {len(x_test)} inputs in "
            f"{predict_seconds:.2f} s, test RMSE {out['test_rmse']:.4f}"
        )
        if args.check:
            print(
                f"single process: {reference.seconds:.2f} s, "
                f"{out['single_process_examples_per_second']:.0f} examples/s after the first "
                f"epoch; max |parameter difference| "
                f"{out['max_parameter_difference']:.2e}; matches single-process fit: "
                f"{out['matches']}"
            )
    return out


if __name__ == "__main__":
    main()
