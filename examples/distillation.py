"""Knowledge distillation as a likelihood, on scikit-learn's digits.

Hinton, Vinyals & Dean (2015), scaled down: a wide MLP teacher with dropout; a small student
trained alone on the hard labels; the same student trained as a :class:`~pyro_bdl.BNN` whose
likelihood is :class:`~pyro_bdl.distill.Distillation`, on the teacher's soft targets at several
temperatures T (``AutoDelta`` guide: a MAP student). Then Bayesian dark knowledge (Korattikara et
al. 2015): a mean-field BNN teacher whose posterior predictive (an average of per-draw
probabilities) is distilled into one MAP student at T = 1.

Every student sees exactly the training images the teacher saw (the transfer set is the training
set) and has the same architecture, prior, optimiser and budget; only the likelihood changes.
Students are averaged over ``--student-seeds`` initialisations. Test metrics: errors (out of the
test images), NLL of the predictive (nats) and ECE (15 bins). Fashion-MNIST is added when
``pyro_bdl.datasets.load_fashion_mnist`` finds the Debian ``dataset-fashion-mnist`` files.

Usage::

    python examples/distillation.py                 # full run: about 6 min on 2 busy CPU cores
    python examples/distillation.py --quick         # a few seconds (checks the plumbing)
    python examples/distillation.py --temperatures 1 2 4 --student-seeds 5
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer.autoguide import AutoDelta
from torch import Tensor, nn

from pyro_bdl import BNN, Categorical, MeanFieldNormal
from pyro_bdl.distill import Distillation, teacher_targets
from pyro_bdl.metrics import ece, nll

DTYPE = torch.float32


@dataclass(frozen=True)
class Data:
    """A classification data set: flattened inputs and integer labels."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor

    @property
    def num_classes(self) -> int:
        return int(self.y_train.max()) + 1


@dataclass(frozen=True)
class Budget:
    """Sizes and training lengths; ``--quick`` shrinks every one of them."""

    teacher_width: int
    teacher_epochs: int
    student_hidden: int
    student_epochs: int
    bnn_hidden: int
    bnn_epochs: int
    num_samples: int
    batch_size: int = 128
    student_lr: float = 1e-2
    bnn_lr: float = 1e-2


FULL = Budget(
    teacher_width=800,
    teacher_epochs=60,
    student_hidden=16,
    student_epochs=100,
    bnn_hidden=100,
    bnn_epochs=200,
    num_samples=100,
)
QUICK = Budget(
    teacher_width=32,
    teacher_epochs=2,
    student_hidden=8,
    student_epochs=2,
    bnn_hidden=16,
    bnn_epochs=2,
    num_samples=4,
)


def load_digits_data(seed: int = 0, limit: int | None = None) -> Data:
    """scikit-learn digits scaled to [0, 1], a fixed stratified 80/20 split (``random_state``)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data / 16.0, bunch.target, test_size=0.2, random_state=seed, stratify=bunch.target
    )
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_test, y_test = x_test[: limit // 2], y_test[: limit // 2]
    return Data(
        "digits",
        torch.as_tensor(x_train, dtype=DTYPE),
        torch.as_tensor(y_train, dtype=torch.long),
        torch.as_tensor(x_test, dtype=DTYPE),
        torch.as_tensor(y_test, dtype=torch.long),
    )


def load_fashion_data(limit: int) -> Data | None:
    """Fashion-MNIST (first ``limit`` training images) if its local files exist, else ``None``."""
    try:
        from pyro_bdl.datasets import load_fashion_mnist
    except ImportError:
        return None
    try:
        x_train, y_train = load_fashion_mnist("train", limit=limit, dtype=DTYPE)
        x_test, y_test = load_fashion_mnist("test", dtype=DTYPE)
    except FileNotFoundError:
        return None
    return Data("fashion-mnist", x_train, y_train, x_test, y_test)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def mlp(d_in: int, hidden: Sequence[int], d_out: int, dropout: Sequence[float] = ()) -> nn.Module:
    """ReLU MLP; ``dropout[i]`` (if given) is applied before weight layer i."""
    layers: list[nn.Module] = []
    sizes = [d_in, *hidden, d_out]
    for i in range(len(sizes) - 1):
        if i < len(dropout) and dropout[i] > 0:
            layers.append(nn.Dropout(dropout[i]))
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(DTYPE)


def train_teacher(data: Data, budget: Budget, seed: int) -> nn.Module:
    """The wide teacher: 2 hidden layers with dropout (0.2 on inputs, 0.5 on hidden), plain Adam."""
    torch.manual_seed(seed)
    w = budget.teacher_width
    net = mlp(data.x_train.shape[1], [w, w], data.num_classes, dropout=[0.2, 0.5, 0.5])
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(budget.teacher_epochs):
        for idx in torch.randperm(len(data.x_train), generator=generator).split(budget.batch_size):
            loss = F.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
    return net.eval()


def fit_student(
    data: Data,
    likelihood: Any,
    targets: Tensor,
    budget: Budget,
    seed: int,
    *,
    guide: Any = AutoDelta,
    hidden: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
) -> BNN:
    """The student as a BNN: one hidden layer, N(0, 1) prior; only the likelihood varies."""
    torch.manual_seed(seed)
    net = mlp(data.x_train.shape[1], [hidden or budget.student_hidden], data.num_classes)
    bnn = BNN(net, dist.Normal(0.0, 1.0), likelihood, guide=guide)
    bnn.fit(
        data.x_train,
        targets,
        epochs=epochs or budget.student_epochs,
        batch_size=budget.batch_size,
        lr=lr or budget.student_lr,
        progress=False,
        seed=seed,
    )
    return bnn


def scores(probs: Tensor, y: Tensor) -> dict[str, float]:
    """Test errors, error %, NLL and ECE of class-probability draws ``(S, N, C)``."""
    errors = int((probs.mean(0).argmax(-1) != y).sum())
    return {
        "errors": float(errors),
        "error_pct": 100.0 * errors / len(y),
        "nll": float(nll(probs, y)),
        "ece": float(ece(probs, y).ece),
    }


def student_scores(bnn: BNN, data: Data, num_samples: int = 1) -> dict[str, float]:
    """Test scores of a BNN's predictive (one draw is exact for an AutoDelta student)."""
    pred = bnn.predict(data.x_test, num_samples=num_samples, seed=0)
    return scores(pred.samples, data.y_test)


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def run(
    data: Data, budget: Budget, temperatures: Sequence[float], seeds: Sequence[int], seed: int
) -> dict[str, Any]:
    """Teacher, student alone, distilled students, a BNN teacher and its distilled student."""
    rows: list[dict[str, Any]] = []

    def add(model: str, t: float | None, s: dict[str, float], start: float) -> dict[str, Any]:
        row = {"model": model, "temperature": t, **s, "seconds": time.perf_counter() - start}
        rows.append(row)
        return row

    def students(likelihood: Any, targets: Tensor) -> dict[str, float]:
        """The same student, one fit per seed; scores averaged over the seeds."""
        runs = [
            student_scores(fit_student(data, likelihood, targets, budget, s), data) for s in seeds
        ]
        return {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}

    start = time.perf_counter()
    teacher = train_teacher(data, budget, seed)
    with torch.no_grad():
        probs = torch.softmax(teacher(data.x_test), -1)[None]
    w, h = budget.teacher_width, budget.student_hidden
    teacher_row = add(f"teacher 2x{w} + dropout", None, scores(probs, data.y_test), start)

    start = time.perf_counter()
    alone = add(
        f"student {h} alone (hard labels)", None, students(Categorical(), data.y_train), start
    )

    distilled: dict[float, dict[str, Any]] = {}
    for t in temperatures:
        start = time.perf_counter()
        soft = teacher_targets(teacher, data.x_train, t)
        distilled[t] = add(f"student {h} distilled", t, students(Distillation(t), soft), start)

    # Bayesian dark knowledge: the posterior predictive of a mean-field BNN, distilled at T = 1.
    start = time.perf_counter()
    bnn_teacher = fit_student(
        data,
        Categorical(),
        data.y_train,
        budget,
        seed,
        guide=MeanFieldNormal(init_scale=1e-2),
        hidden=budget.bnn_hidden,
        epochs=budget.bnn_epochs,
        lr=budget.bnn_lr,
    )
    bnn_teacher_row = add(
        f"BNN teacher {budget.bnn_hidden} (mean-field)",
        None,
        student_scores(bnn_teacher, data, budget.num_samples),
        start,
    )
    start = time.perf_counter()
    soft = teacher_targets(
        bnn_teacher, data.x_train, 1.0, num_samples=budget.num_samples, seed=seed
    )
    bnn_student = add(f"student {h} <- BNN teacher", 1.0, students(Distillation(1.0), soft), start)
    best_t = min(distilled, key=lambda t: (distilled[t]["errors"], distilled[t]["nll"]))
    return {
        "dataset": data.name,
        "num_train": len(data.x_train),
        "num_test": len(data.x_test),
        "rows": rows,
        "teacher": teacher_row,
        "alone": alone,
        "distilled": distilled,
        "best_temperature": best_t,
        "bnn_teacher": bnn_teacher_row,
        "bnn_student": bnn_student,
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The rows of :func:`run` as a markdown table."""
    lines = [
        f"### {result['dataset']}: {result['num_train']} training / {result['num_test']} test "
        "images",
        "",
        "| model | T | test errors | error % | NLL | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        t = "" if r["temperature"] is None else f"{r['temperature']:g}"
        lines.append(
            f"| {r['model']} | {t} | {r['errors']:.1f} | {r['error_pct']:.2f} | {r['nll']:.3f} | "
            f"{r['ece']:.3f} |"
        )
    best = result["distilled"][result["best_temperature"]]
    lines += [
        "",
        f"Best distilled student: T = {result['best_temperature']:g}, {best['errors']:.1f} test "
        f"errors against {result['alone']['errors']:.1f} for the same student alone (teacher: "
        f"{result['teacher']['errors']:.0f}); errors of students are means over seeds.",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the teachers")
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (default 100)")
    parser.add_argument("--quick", action="store_true", help="tiny budget (a few seconds)")
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=None,
        help="distillation temperatures (default 1 2 4 8; --quick: 2)",
    )
    parser.add_argument(
        "--student-seeds", type=int, default=None, help="students per row (default 3; --quick 1)"
    )
    parser.add_argument(
        "--fashion-limit",
        type=int,
        default=10000,
        help="Fashion-MNIST training images, if the data is installed (0: skip)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the experiment, print markdown tables, return the results per data set."""
    args = parse_args(argv)
    budget = QUICK if args.quick else FULL
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit(f"--epochs must be >= 1, got {args.epochs}")
        budget = Budget(**{**budget.__dict__, "student_epochs": args.epochs})
    temperatures = args.temperatures or ([2.0] if args.quick else [1.0, 2.0, 4.0, 8.0])
    bad = [t for t in temperatures if not (math.isfinite(t) and t > 0)]
    if bad:
        raise SystemExit(f"--temperatures must be > 0, got {bad}")
    num_seeds = args.student_seeds or (1 if args.quick else 3)
    seeds = [args.seed + 1 + k for k in range(num_seeds)]
    data = load_digits_data(args.seed, limit=200 if args.quick else None)
    results = {"digits": run(data, budget, temperatures, seeds, args.seed)}
    print(markdown_table(results["digits"]))
    if not args.quick and args.fashion_limit > 0:
        fashion = load_fashion_data(args.fashion_limit)
        if fashion is not None:
            results["fashion_mnist"] = run(fashion, budget, temperatures, seeds, args.seed)
            print()
            print(markdown_table(results["fashion_mnist"]))
    return results


if __name__ == "__main__":
    main()
