"""LLM judges for rubric items: see `rlvr.judges.base` for the protocol and the shared prompt."""

from rlvr.judges.base import Judge, JudgeQuestion, make_judge, parse_verdicts, render_messages

__all__ = ["Judge", "JudgeQuestion", "make_judge", "parse_verdicts", "render_messages"]
