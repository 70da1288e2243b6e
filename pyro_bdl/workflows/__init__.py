"""Workflows built on fitted models (layer L6: may use :class:`~pyro_bdl.BNN`).

- :mod:`~pyro_bdl.workflows.teachers`: teachers for distillation, ``teacher_targets``,
  ``gaussian_teacher_targets`` and ``TeacherTargets`` (documented with :mod:`pyro_bdl.distill`).
"""

from .teachers import (
    TEACHER_DRAWS_PLATE,
    Teacher,
    TeacherTargets,
    gaussian_teacher_targets,
    teacher_targets,
)

__all__ = [
    "teacher_targets",
    "gaussian_teacher_targets",
    "TeacherTargets",
    "Teacher",
    "TEACHER_DRAWS_PLATE",
]
