"""Task suites: seeded sources of `Problem`s with disjoint train/test splits."""

from rlvr.tasks.base import Problem, Task, available_tasks, make_task

__all__ = ["Problem", "Task", "available_tasks", "make_task"]
