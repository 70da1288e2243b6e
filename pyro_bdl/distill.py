r"""Knowledge distillation as a likelihood (Hinton, Vinyals & Dean 2015).

A student is an ordinary :class:`~pyro_bdl.BNN` whose likelihood is :class:`Distillation`: its
observations are a teacher's temperature-softened class probabilities, scored by the soft-target
cross-entropy :math:`\log p(\mathbf p \mid z) = T^2 \sum_j p_j \log \mathrm{softmax}(z / T)_j`.
Targets come from :func:`teacher_targets` (once) or :class:`TeacherTargets` (per minibatch);
regression distillation is :class:`GaussianDistillation` on :func:`gaussian_teacher_targets`.

This module gathers the names from where they live: :mod:`pyro_bdl.distributions.tempered`,
:mod:`pyro_bdl.distributions.expected_normal`, :mod:`pyro_bdl.likelihoods.distillation` and
:mod:`pyro_bdl.workflows.teachers`.

Example::

    >>> import torch
    >>> from torch import nn
    >>> x, teacher_net = torch.randn(8, 3), nn.Linear(3, 4)
    >>> teacher_targets(teacher_net, x, temperature=4.0).shape  # (N, C), for Distillation(4.0)
    torch.Size([8, 4])
"""

from .distributions.expected_normal import ExpectedNormal
from .distributions.tempered import DistillationCategorical, TemperedCategorical, stack_targets
from .likelihoods.distillation import Distillation, GaussianDistillation
from .workflows.teachers import (
    TEACHER_DRAWS_PLATE,  # noqa: F401  (importable from here, as before; not in __all__)
    Teacher,
    TeacherTargets,
    gaussian_teacher_targets,
    teacher_targets,
)

__all__ = [
    "TemperedCategorical",
    "DistillationCategorical",
    "ExpectedNormal",
    "Distillation",
    "GaussianDistillation",
    "teacher_targets",
    "gaussian_teacher_targets",
    "stack_targets",
    "TeacherTargets",
    "Teacher",
]
