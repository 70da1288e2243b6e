"""Hinton, Vinyals & Dean (2015) on Fashion-MNIST at the scale of a 2-core CPU (issue #18, part 2).

One teacher, a 784-H-H-10 ReLU MLP trained as an MC-dropout BNN (``BernoulliDropout``: drop 0.2
on the inputs, 0.5 on the hidden units), gives two teachers: its dropout network in evaluation
mode (``to_dropout_net``, the deterministic weight-scaling teacher of Hinton et al.) and its
MC-dropout posterior predictive (``teacher_targets`` over ``--teacher-draws`` mask draws). The
students are 784-h-10 MAP networks (``AutoDelta``), fitted through the package's own API:
``Categorical`` on the hard labels, or ``Distillation(T, hard_weight=w)`` on
``teacher_targets(teacher, x, T)`` (``stack_targets`` adds the labels when ``w > 0``). The
transfer set is the first ``--n-transfer`` training images; the last ``--n-val`` are held out
(unlabelled) to choose the omitted class's bias shift. Errors are counted on the 10 000 test
images; "gap recovered" is ``(e_hard - e) / (e_hard - e_teacher)`` against the hard-label student
with the same prior.

Experiments (each over ``--seeds``; the full transfer set unless "small"):

- ``soft``: flat prior (N(0, 1e3^2), no weight decay) -- hard labels, and soft targets alone at
  every ``--temperatures``;
- ``small`` / ``small-prior`` / ``small-bayes``: the same on a transfer set of ``--n-small``
  labelled images (3 %, Hinton et al.'s speech experiment), ``--small-epochs`` epochs;
- ``prior`` / ``prior-soft1``: the package's default N(0, 1) prior -- hard labels and soft
  targets at ``--prior-temperatures``, with the default soft weight T^2 and with soft weight 1;
- ``mixed``: flat prior, soft + hard labels at ``--mixed-temperature`` for each ``--hard-weights``;
- ``bayes``: the MC-dropout predictive as teacher, at ``--bayes-temperatures``;
- ``capacity``: a 784-``--capacity-hidden``-10 student, hard labels and ``--capacity-temperatures``
  (first seed only);
- ``omitted``: class ``--omit`` removed from the transfer set; its test accuracy from soft
  targets alone, before and after raising its output bias (the shift chosen without labels, by
  matching the predicted share of that class on the held-out images to the class prior 1/10; the
  accuracy-optimal shift on the held-out images is reported for comparison).

``--resume OLD.json`` reuses the student runs of an earlier run with the same settings (the
teacher is trained again, deterministically: one thread, fixed seeds).

    python benchmarks/distillation.py --output distill.md --json distill.json
    python benchmarks/distillation.py --quick           # < 60 s, the CI budget
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

from pyro_bdl import BNN, Categorical
from pyro_bdl.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from pyro_bdl.distill import Distillation, stack_targets, teacher_targets
from pyro_bdl.guides import BernoulliDropout
from pyro_bdl.workflows.dropout_nets import to_dropout_net

PRIORS = {"flat": 1e3, "N(0,1)": 1.0}  # prior std of every weight and bias
BATCH = 256


def _seed_all(seed: int) -> None:
    pyro.set_rng_seed(seed)  # torch, numpy and random
    pyro.clear_param_store()


def load(cfg: dict) -> dict[str, torch.Tensor]:
    """Transfer set, held-out (unlabelled) images and the test set."""
    n_tr, n_val = cfg["n_transfer"], cfg["n_val"]
    x, y = load_fashion_mnist("train", limit=n_tr + n_val)
    xt, yt = load_fashion_mnist("test", limit=cfg["n_test"])
    return {"x": x[:n_tr], "y": y[:n_tr], "x_val": x[n_tr:], "y_val": y[n_tr:], "xt": xt, "yt": yt}


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def errors(probs: torch.Tensor, y: torch.Tensor) -> int:
    return int((probs.argmax(-1) != y).sum())


def train_teacher(cfg: dict, data: dict) -> tuple[BNN, nn.Module, dict]:
    """The MC-dropout BNN teacher and its dropout net (eval mode: weight scaling)."""
    _seed_all(1000)
    h = cfg["teacher_hidden"]
    net = mlp((784, h, h, 10))
    p = {"0.weight": 0.2, "2.weight": 0.5, "4.weight": 0.5}
    bnn = BNN(net, dist.Normal(0.0, 1.0), Categorical(), guide=BernoulliDropout(p=p))
    start = time.perf_counter()
    bnn.fit(data["x"], data["y"], epochs=cfg["teacher_epochs"], batch_size=128, lr=1e-3, seed=0,
            progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    det = to_dropout_net(bnn).eval()
    with torch.no_grad():
        det_err = errors(torch.softmax(det(data["xt"]), -1), data["yt"])
    mc = bnn.predict(data["xt"], cfg["teacher_draws"], seed=0).probs
    info = {"hidden": h, "epochs": cfg["teacher_epochs"], "fit_seconds": seconds,
            "errors_det": det_err, "errors_mc": errors(mc, data["yt"])}  # fmt: skip
    return bnn, det, info


def student(cfg: dict, prior: str, likelihood: Any) -> BNN:
    net = mlp((784, cfg["student_hidden"], 10))
    return BNN(net, dist.Normal(0.0, PRIORS[prior]), likelihood, guide=AutoDelta)


def fit_student(
    cfg: dict,
    data: dict,
    prior: str,
    likelihood: Any,
    y: torch.Tensor,
    seed: int,
    x: torch.Tensor | None = None,
    epochs: int | None = None,
) -> tuple[BNN, dict]:
    """Fit one MAP student; test errors at the end and along the way (``curve_epochs``)."""
    _seed_all(seed)
    bnn = student(cfg, prior, likelihood)
    curve: dict[int, int] = {}
    epochs = cfg["student_epochs"] if epochs is None else epochs
    marks = {max(1, epochs // 3), max(1, epochs * 2 // 3)}

    def track(_: int, result: Any) -> None:
        epoch = len(result.elbo)
        if epoch in marks:
            curve[epoch] = errors(bnn.predict(data["xt"], 1).probs, data["yt"])

    start = time.perf_counter()
    x = data["x"] if x is None else x
    bnn.fit(x, y, epochs=epochs, batch_size=BATCH, lr=cfg["lr"], seed=seed,
            progress=False, callback=track)  # fmt: skip
    seconds = time.perf_counter() - start
    err = errors(bnn.predict(data["xt"], 1).probs, data["yt"])
    return bnn, {"errors": err, "curve": curve, "seconds": seconds, "seed": seed}


def soft_targets(teachers: dict, teacher: str, x: torch.Tensor, t: float, cfg: dict, cache: dict):
    key = (teacher, t, len(x))
    if key not in cache:
        kw = {"num_samples": cfg["teacher_draws"], "seed": 0} if teacher == "mc-dropout" else {}
        cache[key] = teacher_targets(teachers[teacher], x, t, batch_size=5000, **kw)
    return cache[key]


def plan(cfg: dict) -> list[dict]:
    """Every student run, most important first (the JSON is rewritten after each)."""
    n, h, hw, temps = cfg["n_transfer"], cfg["student_hidden"], cfg["hard_weights"], cfg["temps"]
    runs: list[dict] = []

    def add(exp: str, seeds: Sequence[int], ts: Sequence[float | None], **kw: Any) -> None:
        base = {"experiment": exp, "teacher": "dropout-net", "prior": "flat", "hard_weight": 0.0,
                "soft_weight": None, "n_transfer": n, "hidden": h, **kw}  # fmt: skip
        runs.extend({**base, "T": t, "seed": s} for s in seeds for t in ts)

    seeds, small = cfg["seeds"], {"n_transfer": cfg["n_small"]}
    add("small", seeds, [None, *temps], **small)
    add("small-prior", seeds, [None, *cfg["prior_temps"]], prior="N(0,1)", **small)
    add("small-bayes", seeds, cfg["bayes_temps"], teacher="mc-dropout", **small)
    add("soft", seeds, [None, *temps])
    add("prior", seeds, [None, *cfg["prior_temps"]], prior="N(0,1)")
    add("prior-soft1", seeds, cfg["prior_temps"], prior="N(0,1)", soft_weight=1.0)
    for w in hw:
        add("mixed", seeds, [cfg["mixed_temp"]], hard_weight=w)
    add("bayes", seeds, cfg["bayes_temps"], teacher="mc-dropout")
    add("capacity", seeds[:1], [None, *cfg["capacity_temps"]], hidden=cfg["capacity_hidden"])
    return runs


def run_one(run: dict, cfg: dict, data: dict, teachers: dict, cache: dict) -> dict:
    x, labels = data["x"][: run["n_transfer"]], data["y"][: run["n_transfer"]]
    if run["T"] is None:
        lik: Any = Categorical()
        y = labels
    else:
        lik = Distillation(run["T"], hard_weight=run["hard_weight"], soft_weight=run["soft_weight"])
        y = soft_targets(teachers, run["teacher"], x, run["T"], cfg, cache)
        y = stack_targets(y, labels) if run["hard_weight"] > 0 else y
    _, rec = fit_student({**cfg, "student_hidden": run["hidden"]}, data, run["prior"], lik, y,
                         run["seed"], x=x, epochs=_epochs(cfg, run["n_transfer"]))  # fmt: skip
    return {**run, **rec}


def _epochs(cfg: dict, n: int) -> int:
    """Small transfer sets get more epochs (about as many steps as ``--student-epochs`` on
    ``--n-transfer`` images would take, capped at ``--small-epochs``)."""
    if n >= cfg["n_transfer"]:
        return cfg["student_epochs"]
    return cfg["small_epochs"]


def _share(logits: torch.Tensor, k: int, shift: float) -> float:
    z = logits.clone()
    z[:, k] += shift
    return float((z.argmax(-1) == k).double().mean())


def prior_matching_shift(logits: torch.Tensor, k: int, share: float) -> float:
    """Bias shift of class ``k`` whose predicted share on unlabelled inputs equals ``share``."""
    lo, hi = 0.0, 50.0
    if _share(logits, k, lo) >= share:
        return 0.0
    for _ in range(40):  # the share is non-decreasing in the shift: bisection
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _share(logits, k, mid) < share else (lo, mid)
    return hi


def accuracy_shift(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    grid = torch.linspace(0.0, 20.0, 201)
    accs = []
    for s in grid:
        z = logits.clone()
        z[:, k] += s
        accs.append(float((z.argmax(-1) == y).double().mean()))
    return float(grid[max(range(len(accs)), key=accs.__getitem__)])


def _class_eval(logits: torch.Tensor, y: torch.Tensor, k: int, shift: float) -> dict:
    z = logits.clone()
    z[:, k] += shift
    pred = z.argmax(-1)
    mask = y == k
    return {"class_acc": float((pred[mask] == k).double().mean()), "errors": int((pred != y).sum())}


def run_omitted(cfg: dict, data: dict, teachers: dict, seed: int) -> dict:
    """Student on the transfer set without class k, soft targets only (flat prior)."""
    k, t = cfg["omit"], cfg["omit_temp"]
    keep = data["y"] != k
    x = data["x"][keep]
    y = teacher_targets(teachers["dropout-net"], x, t, batch_size=5000)
    bnn, rec = fit_student(cfg, data, "flat", Distillation(t), y, seed, x=x)
    log_val = bnn.predict(data["x_val"], 1).probs.log()
    log_test = bnn.predict(data["xt"], 1).probs.log()
    shift = prior_matching_shift(log_val, k, 1.0 / 10)
    oracle = accuracy_shift(log_val, data["y_val"], k)
    out = {"seed": seed, "T": t, "class": k, "shift_prior": shift, "shift_val_acc": oracle}
    for name, s in (("before", 0.0), ("prior", shift), ("val_acc", oracle)):
        out[name] = _class_eval(log_test, data["yt"], k, s)
    return {**out, "seconds": rec["seconds"]}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else math.nan)


KEY = ("experiment", "prior", "teacher", "T", "hard_weight", "soft_weight", "n_transfer", "hidden")


def summarise(records: list[dict], teacher_info: dict) -> list[dict]:
    """One row per configuration: mean (sd) test errors over seeds and the gap recovered."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in KEY), []).append(r)
    hard = {(r[1], r[6], r[7]): mean_sd([x["errors"] for x in v])[0]
            for r, v in groups.items() if r[3] is None}  # fmt: skip
    t_err = {"dropout-net": teacher_info["errors_det"], "mc-dropout": teacher_info["errors_mc"]}
    rows = []
    for key, recs in groups.items():
        row = dict(zip(KEY, key, strict=True))
        m, sd = mean_sd([r["errors"] for r in recs])
        base = hard.get((row["prior"], row["n_transfer"], row["hidden"]), math.nan)
        gap = base - t_err[row["teacher"]]
        t, sw = row["T"], row["soft_weight"]
        curves = [{int(e): v for e, v in r["curve"].items()} for r in recs]  # JSON: str keys
        curve = {
            e: statistics.fmean(c[e] for c in curves if e in c)
            for e in sorted({e for c in curves for e in c})
        }
        row.update(soft_weight=t**2 if sw is None and t else sw, seeds=len(recs), errors=m,
                   errors_sd=sd, gap_recovered=(base - m) / gap if t and gap > 0 else math.nan,
                   curve=curve, seconds=statistics.fmean(r["seconds"] for r in recs))  # fmt: skip
        rows.append(row)
    return rows


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def format_tables(result: dict) -> str:
    t = result["teacher"]
    lines = [
        f"Teacher 784-{t['hidden']}-{t['hidden']}-10 (MC-dropout BNN, {t['epochs']} epochs, "
        f"fit {t['fit_seconds']:.0f} s): {t['errors_det']} test errors as a dropout net "
        f"(weight scaling), {t['errors_mc']} as its MC-dropout predictive. Mean max-prob of its "
        "T = 1 targets on the transfer set: "
        f"{t['max_prob_det']:.3f} (dropout net), {t['max_prob_mc']:.3f} (MC dropout).",
        "",
        "| experiment | transfer set | student | prior | teacher | T | hard w | soft w | seeds "
        "| test errors (sd) | gap recovered | errors along training (epoch: errors) | s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        curve = ", ".join(f"{e}: {v:.0f}" for e, v in r["curve"].items())
        lines.append(
            f"| {r['experiment']} | {r['n_transfer']} | 784-{r['hidden']}-10 | {r['prior']} "
            f"| {r['teacher'] if r['T'] else '-'} "
            f"| {r['T'] or 'hard labels'} | {r['hard_weight'] if r['T'] else '-'} "
            f"| {_fmt(r['soft_weight'], 0) if r['T'] else '-'} | {r['seeds']} "
            f"| {r['errors']:.1f} ({_fmt(r['errors_sd'])}) "
            f"| {_fmt(100 * r['gap_recovered'], 0)} % | {curve} | {r['seconds']:.0f} |"
        )
    om = result["omitted"]
    if om:
        k = om[0]["class"]
        lines += [
            "",
            f"Omitted class {k} ({FASHION_MNIST_CLASSES[k]}), T = {om[0]['T']}, soft targets only, "
            "flat prior:",
            "",
            "| seed | class acc. before | test errors before | shift (prior match) | class acc. "
            "| errors | shift (held-out acc.) | class acc. | errors |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for o in om:
            b, p, v = o["before"], o["prior"], o["val_acc"]
            lines.append(
                f"| {o['seed']} | {100 * b['class_acc']:.1f} % | {b['errors']} "
                f"| {o['shift_prior']:.2f} | {100 * p['class_acc']:.1f} % | {p['errors']} "
                f"| {o['shift_val_acc']:.2f} | {100 * v['class_acc']:.1f} % | {v['errors']} |"
            )
    lines += [
        "",
        f"Wall time {result['wall_seconds']:.0f} s; config: `{json.dumps(result['config'])}`",
    ]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budget (< 60 s), for CI")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--temperatures", type=float, nargs="+", default=[1, 2, 4, 8, 20])
    p.add_argument("--prior-temperatures", type=float, nargs="+", default=[1, 4, 20])
    p.add_argument("--bayes-temperatures", type=float, nargs="+", default=[1, 4])
    p.add_argument("--mixed-temperature", type=float, default=4.0)
    p.add_argument("--hard-weights", type=float, nargs="+", default=[0.5, 4.0])
    p.add_argument("--teacher-hidden", type=int, default=800)
    p.add_argument("--teacher-epochs", type=int, default=12)
    p.add_argument("--teacher-draws", type=int, default=10, help="MC-dropout draws")
    p.add_argument("--student-hidden", type=int, default=16)
    p.add_argument("--student-epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-transfer", type=int, default=55000)
    p.add_argument("--n-small", type=int, default=1650, help="small transfer set (3 %%)")
    p.add_argument("--small-epochs", type=int, default=150)
    p.add_argument("--capacity-hidden", type=int, default=100)
    p.add_argument("--capacity-temperatures", type=float, nargs="+", default=[4, 20])
    p.add_argument("--resume", type=Path, help="JSON of an earlier run: reuse its student runs")
    p.add_argument("--retable", type=Path, help="only rebuild the tables of this run's JSON")
    p.add_argument("--n-val", type=int, default=5000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--omit", type=int, default=3, help="class left out of the transfer set")
    p.add_argument("--omit-temperature", type=float, default=8.0)
    p.add_argument("--output", type=Path, help="write the markdown table here")
    p.add_argument("--json", type=Path, help="write the results (JSON) here")
    return p


def config(args: argparse.Namespace) -> dict:
    cfg = {
        "seeds": args.seeds, "temps": args.temperatures, "prior_temps": args.prior_temperatures,
        "bayes_temps": args.bayes_temperatures, "mixed_temp": args.mixed_temperature,
        "hard_weights": args.hard_weights, "teacher_hidden": args.teacher_hidden,
        "teacher_epochs": args.teacher_epochs, "teacher_draws": args.teacher_draws,
        "student_hidden": args.student_hidden, "student_epochs": args.student_epochs,
        "lr": args.lr, "n_transfer": args.n_transfer, "n_val": args.n_val, "n_test": args.n_test,
        "omit": args.omit, "omit_temp": args.omit_temperature, "n_small": args.n_small,
        "small_epochs": args.small_epochs, "capacity_hidden": args.capacity_hidden,
        "capacity_temps": args.capacity_temperatures,
    }  # fmt: skip
    if args.quick:
        cfg.update(seeds=[0], temps=[1.0, 4.0], prior_temps=[4.0], bayes_temps=[4.0],
                   hard_weights=[0.5], teacher_hidden=64, teacher_epochs=5, teacher_draws=4,
                   student_epochs=2, n_transfer=2000, n_val=500, n_test=1000, n_small=300,
                   small_epochs=3, capacity_hidden=32, capacity_temps=[4.0])  # fmt: skip
    return cfg


def _resumed(path: Path | None, cfg: dict) -> dict[tuple, dict]:
    """Student runs of an earlier JSON with the same teacher and student settings, by key."""
    if path is None:
        return {}
    old = json.loads(path.read_text())
    same = ("teacher_hidden", "teacher_epochs", "student_epochs", "lr", "n_transfer", "n_test")
    if any(old["config"][k] != cfg[k] for k in same):
        raise ValueError(f"Expected --resume {path} to have the same {same}, but they differ.")
    out = {}
    for r in old["records"]:
        r = {"n_transfer": cfg["n_transfer"], "hidden": old["config"]["student_hidden"], **r}
        out[tuple(r[k] for k in (*KEY, "seed"))] = r
    return out


def retable(args: argparse.Namespace) -> dict:
    """Re-summarise a finished run's records (``--retable run.json``) and rewrite the outputs."""
    result = json.loads(args.retable.read_text())
    result["rows"] = summarise(result["records"], result["teacher"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.output:
        args.output.write_text(format_tables(result))
    print(format_tables(result))
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.retable:
        return retable(args)
    cfg = config(args)
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load(cfg)
    bnn, det, info = train_teacher(cfg, data)
    teachers: dict[str, Any] = {"dropout-net": det, "mc-dropout": bnn}
    cache: dict = {}
    for name, key in (("dropout-net", "max_prob_det"), ("mc-dropout", "max_prob_mc")):
        info[key] = float(
            soft_targets(teachers, name, data["x"], 1.0, cfg, cache).max(-1).values.mean()
        )
    print(f"teacher: {info}", flush=True)
    result: dict[str, Any] = {"config": cfg, "teacher": info, "records": [], "omitted": []}

    def save() -> None:
        result["rows"] = summarise(result["records"], info)
        result["wall_seconds"] = time.perf_counter() - start
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        if args.output:
            args.output.write_text(format_tables(result))

    done = _resumed(args.resume, cfg)
    for run in plan(cfg):
        key = tuple(run[k] for k in (*KEY, "seed"))
        rec = done[key] if key in done else run_one(run, cfg, data, teachers, cache)
        result["records"].append(rec)
        print({k: rec[k] for k in ("experiment", "prior", "T", "hard_weight", "seed", "errors")},
              f"{rec['seconds']:.0f} s", flush=True)  # fmt: skip
        save()
    for seed in cfg["seeds"]:
        result["omitted"].append(run_omitted(cfg, data, teachers, seed))
        print(result["omitted"][-1], flush=True)
        save()
    print(format_tables(result))
    return result


if __name__ == "__main__":
    main()
