"""Find the program in a completion: the last fenced code block.

A block opens with three or more backticks (optionally a language tag) and closes with as many on
a line of their own. An unclosed block (a completion cut at the token limit) does not count.
With `allow_unfenced`, a completion without any fence is taken whole. This module only finds
text; it never runs or parses it.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r"^[ \t]*(`{3,})[ \t]*([\w+#.-]*)[^\n`]*\n(.*?)^[ \t]*\1[ \t]*$",
                    re.MULTILINE | re.DOTALL)


def last_code_block(text: str, allow_unfenced: bool = False) -> str | None:
    """The body of the last closed fenced block, or None when there is none."""
    blocks = [m.group(3) for m in _BLOCK.finditer(text)]
    if blocks:
        return blocks[-1]
    if allow_unfenced and "```" not in text and text.strip():
        return text
    return None


def with_prelude(code: str, prelude: str) -> str:
    """The candidate's program with the problem's given code before it. A block whose first line
    is indented continues the prelude (HumanEval's completion style: the body of the function)."""
    if not prelude:
        return code
    first = next((line for line in code.splitlines() if line.strip()), "")
    if first[:1] in (" ", "\t"):
        return prelude.rstrip("\n") + "\n" + code
    return prelude.rstrip("\n") + "\n\n\n" + code
