"""Bayesian dark knowledge (Balan et al. 2015) on Boston housing (issue #18, part 3).

Per split of the 20 standard 90/10 splits (inputs and targets standardised with training
statistics, as in ``benchmarks/uci.py``):

- **teacher**: SGHMC draws of a 13-50-2 heteroskedastic network (``HeteroskedasticGaussian``,
  prior N(0, 1)), started at a MAP fit as in the ``sghmc`` row of ``benchmarks/uci.py
  --posteriors`` (40 epochs of Adam, 20 burn-in epochs, then one draw per epoch for 50 epochs)
  but with a smaller step, ``--sghmc-lr 2e-3`` / N (that row's 1e-2 / N drifts to outlying
  draws on some splits, whose moments the student cannot use: see benchmarks/README.md);
  its predictive is the mixture over the draws;
- **transfer set**: the training inputs and ``--copies`` copies of them perturbed with Gaussian
  noise of std ``--noise`` (standardised units), as Balan et al. perturb the training inputs;
- **targets**: the teacher's predictive mean and total variance at every transfer input (the
  moments ``gaussian_teacher_targets`` computes, here over the SGHMC draws,
  ``bnn.predict(x, S, posterior=draws)``: that function takes no ``posterior=``);
- **student**: ONE network of the teacher's size (13-50-2, ``AutoDelta``, prior N(0, 1)) with the
  ``GaussianDistillation`` likelihood: it predicts a Gaussian (mean, softplus scale) and maximises
  the expected log density under the teacher's moment-matched predictive, i.e. minimises
  KL(N(m, s^2) || N(mu, sigma^2)) up to a constant.

Test log-likelihoods are in original units (mean over the test points of log p(y), minus
log y_std), as the UCI tables report them.

    python benchmarks/dark_knowledge.py --output dk.md --json dk.json   # 20 splits
    python benchmarks/dark_knowledge.py --quick                         # 2 splits, < 60 s
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoDelta
from torch import nn

from pyro_bdl import BNN
from pyro_bdl.datasets import load_uci, standardize, uci_splits
from pyro_bdl.likelihoods import GaussianDistillation, HeteroskedasticGaussian
from pyro_bdl.posteriors import map_to_net
from pyro_bdl.posteriors.sgmcmc import SGHMC

BATCH = 128
DTYPE = torch.float64
#: Published test LL on Boston (Balan et al. 2015; PBP: Hernandez-Lobato & Adams 2015; VI: Graves)
PUBLISHED = {"SGLD": -2.306, "distilled SGLD": -2.350, "PBP": -2.574, "VI": -2.903}


def make_net(d_in: int, n_hidden: int, seed: int) -> nn.Sequential:
    """``d_in -> n_hidden (ReLU) -> 2`` (mean, unconstrained scale), Glorot uniform, zero bias."""
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(d_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 2)).to(DTYPE)
    for layer in (net[0], net[2]):
        nn.init.xavier_uniform_(layer.weight, generator=gen)
        nn.init.zeros_(layer.bias)
    return net


def teacher(xs: torch.Tensor, ys: torch.Tensor, cfg: dict, seed: int) -> tuple[BNN, Any]:
    """SGHMC from a heteroskedastic MAP fit (as ``benchmarks/uci.py``'s ``sghmc`` row)."""
    pyro.clear_param_store()
    net = make_net(xs.shape[1], cfg["n_hidden"], seed)
    like = HeteroskedasticGaussian(min_scale=1e-3)
    point = BNN(net, dist.Normal(0.0, 1.0), like, guide=AutoDelta)
    kw = {"batch_size": BATCH, "progress": False, "seed": seed}
    point.fit(xs, ys, epochs=cfg["map_epochs"], lr=1e-2, **kw)
    map_to_net(point, xs)
    bnn = BNN(net, dist.Normal(0.0, 1.0), like)
    steps = math.ceil(len(xs) / BATCH)
    sampler = SGHMC(bnn, lr=cfg["sghmc_lr"] / len(xs), alpha=0.1, init="net")
    post = sampler.run(xs, ys, num_samples=cfg["draws"], burn_in=cfg["burn_in"] * steps,
                       thin=steps, batch_size=BATCH, seed=seed)  # fmt: skip
    return bnn, post


def transfer_set(xs: torch.Tensor, cfg: dict, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noisy = [xs + cfg["noise"] * torch.randn(xs.shape, generator=gen, dtype=xs.dtype)
             for _ in range(cfg["copies"])]  # fmt: skip
    return torch.cat([xs, *noisy])


def student(x_tr: torch.Tensor, moments: torch.Tensor, cfg: dict, seed: int) -> BNN:
    pyro.clear_param_store()
    net = make_net(x_tr.shape[1], cfg["n_hidden"], seed + 1)
    bnn = BNN(net, dist.Normal(0.0, 1.0), GaussianDistillation(min_scale=1e-3), guide=AutoDelta)
    kw = {"batch_size": cfg["student_batch"], "lr": cfg["lr"], "seed": seed, "progress": False}
    bnn.fit(x_tr, moments, epochs=cfg["student_epochs"], **kw)
    return bnn


def run_split(x: torch.Tensor, y: torch.Tensor, split: tuple, cfg: dict, seed: int) -> dict:
    tr, te = (torch.as_tensor(i) for i in split)
    (xs, xt), _, _ = standardize(x[tr], x[te])
    (ys,), y_mean, y_std = standardize(y[tr])
    yt = (y[te] - y_mean) / y_std
    log_std = math.log(float(y_std))
    start = time.perf_counter()
    bnn, post = teacher(xs, ys, cfg, seed)
    t_teacher = time.perf_counter() - start
    t_pred = bnn.predict(xt, post.num_draws, posterior=post)
    x_tr = transfer_set(xs, cfg, seed)
    with torch.no_grad():
        pred = bnn.predict(x_tr, post.num_draws, posterior=post)
        moments = torch.stack([pred.mean, pred.variance], dim=-1)  # (N, 2): mean, variance
    start = time.perf_counter()
    stu = student(x_tr, moments, cfg, seed)
    t_student = time.perf_counter() - start
    s_pred = stu.predict(xt, 1)
    # the teacher's moment-matched Gaussian: what the student is fitted to (an upper reference)
    m_pred = bnn.predict(xt, post.num_draws, posterior=post)
    gauss = torch.distributions.Normal(m_pred.mean, m_pred.variance.sqrt())

    def rmse(mean: torch.Tensor) -> float:
        return float(((mean - yt) ** 2).mean().sqrt()) * float(y_std)

    return {
        "teacher_ll": float(t_pred.log_prob(yt).mean()) - log_std,
        "teacher_gauss_ll": float(gauss.log_prob(yt).mean()) - log_std,
        "student_ll": float(s_pred.log_prob(yt).mean()) - log_std,
        "teacher_rmse": rmse(t_pred.mean),
        "student_rmse": rmse(s_pred.mean),
        "teacher_seconds": t_teacher,
        "student_seconds": t_student,
    }


def summarise(records: list[dict]) -> dict:
    out: dict[str, Any] = {"splits": len(records)}
    for key in records[0]:
        vals = [r[key] for r in records]
        out[key] = statistics.fmean(vals)
        out[key + "_se"] = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
    diffs = [r["student_ll"] - r["teacher_ll"] for r in records]
    out["gap"] = statistics.fmean(diffs)
    out["gap_se"] = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return out


def format_table(result: dict) -> str:
    s, n = result["summary"], result["summary"]["splits"]
    lines = [
        f"Boston housing, {n} split(s) (mean ± s.e. over splits), test LL in original units:",
        "",
        "| model | test LL | RMSE | fit s / split | published test LL |",
        "|---|---|---|---|---|",
        f"| SGHMC teacher ({result['config']['draws']} draws, mixture) "
        f"| {s['teacher_ll']:.3f} ± {s['teacher_ll_se']:.3f} "
        f"| {s['teacher_rmse']:.2f} ± {s['teacher_rmse_se']:.2f} | {s['teacher_seconds']:.1f} "
        f"| SGLD {PUBLISHED['SGLD']} |",
        f"| teacher's moment-matched Gaussian | {s['teacher_gauss_ll']:.3f} ± "
        f"{s['teacher_gauss_ll_se']:.3f} | - | - | - |",
        f"| distilled student (one 13-{result['config']['n_hidden']}-2 net) "
        f"| {s['student_ll']:.3f} ± {s['student_ll_se']:.3f} "
        f"| {s['student_rmse']:.2f} ± {s['student_rmse_se']:.2f} | {s['student_seconds']:.1f} "
        f"| distilled SGLD {PUBLISHED['distilled SGLD']} |",
        "",
        f"Student - teacher test LL: {s['gap']:+.3f} ± {s['gap_se']:.3f} nats (goal: within 0.05). "
        f"Published PBP {PUBLISHED['PBP']}, VI {PUBLISHED['VI']}.",
        "",
        f"Wall time {result['wall_seconds']:.0f} s; config: `{json.dumps(result['config'])}`",
    ]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 splits, tiny budget (< 60 s), for CI")
    p.add_argument("--splits", type=int, default=20, help="first N of the 20 standard splits")
    p.add_argument("--dataset", default="bostonHousing")
    p.add_argument("--data-dir", help="folder of the UCI sets (default: find_uci_dir's search)")
    p.add_argument("--n-hidden", type=int, default=50)
    p.add_argument("--map-epochs", type=int, default=40)
    p.add_argument("--burn-in", type=int, default=20, help="SGHMC burn-in epochs")
    p.add_argument("--draws", type=int, default=50, help="SGHMC draws (one per epoch)")
    p.add_argument("--sghmc-lr", type=float, default=2e-3, help="SGHMC step size times N")
    p.add_argument("--split-ids", type=int, nargs="+", help="run only these of the first --splits")
    p.add_argument("--copies", type=int, default=20, help="perturbed copies in the transfer set")
    p.add_argument("--noise", type=float, default=0.1, help="perturbation std (standardised x)")
    p.add_argument("--student-epochs", type=int, default=60)
    p.add_argument("--lr", type=float, default=3e-3, help="student learning rate")
    p.add_argument("--student-batch", type=int, default=256, help="student minibatch size")
    p.add_argument("--output", type=Path, help="write the markdown table here")
    p.add_argument("--json", type=Path, help="write the results (JSON) here")
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    keys = ("splits", "dataset", "n_hidden", "map_epochs", "burn_in", "draws", "sghmc_lr",
            "copies", "noise", "student_epochs", "lr", "student_batch")  # fmt: skip
    cfg = {k: getattr(args, k) for k in keys}
    if args.quick:
        cfg.update(splits=2, map_epochs=10, burn_in=2, draws=5, copies=2, student_epochs=5)
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_uci(cfg["dataset"], data_dir=args.data_dir, dtype=DTYPE)
    splits = uci_splits(len(data.y))[: cfg["splits"]]
    records = []
    result: dict[str, Any] = {"config": cfg}
    for i, split in enumerate(splits):
        if args.split_ids is not None and i not in args.split_ids:
            continue
        records.append(run_split(data.x, data.y, split, cfg, seed=i))
        print(i, {k: round(v, 3) for k, v in records[-1].items()}, flush=True)
        result.update(records=records, summary=summarise(records))
        result["wall_seconds"] = time.perf_counter() - start
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        if args.output:
            args.output.write_text(format_table(result))
    print(format_table(result))
    return result


if __name__ == "__main__":
    main()
