"""Find the final answer in a completion (or in a reference solution).

Where an answer is looked for, in order:
1. the last `<answer>...</answer>` block (a `\\boxed{}` or an "answer is" phrase inside it
   wins; a sentence with a single number gives that number);
2. the last `\\boxed{...}` / `\\fbox{...}` (nested braces are matched; `\\boxed 5` works too);
3. a GSM8K `#### 42` line;
4. the last "the (final) answer is ..." / "Final answer: ..." phrase, up to the end of its sentence;
5. only when asked for (`last_number=True`): the last number written anywhere.

Only a bounded tail of the text is scanned (`MAX_SCAN_CHARS`): answers come last, and a hostile
100k-character completion costs linear time at most. This module does not normalise or judge the
answer; `normalize` and `parse` do that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SCAN_CHARS = 50_000  # tail of the completion that is searched for an answer
MAX_ANSWER_CHARS = 2_000  # a longer extracted answer is not parsed (status "unparsable")

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_GSM8K = re.compile(r"####\s*([^\n]+)")
_ANSWER_PHRASE = re.compile(
    r"(?:(?:the\s+)?(?:final\s+)?answer\s*(?:is|=|:)|final\s+answer\s*[:=]?)\s*[:]?\s*", re.I)
_SENTENCE_END = re.compile(r"(?<![\d\\])\.(?:\s|$)|\n\s*\n|\.\s*\$(?:\s|$)")
_WORDS = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_REASON = re.compile(r",?\s+(?:because|since|as|which|where|so that)\s", re.I)  # `4 because ...`
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and how it was found (`boxed`, `answer_tag`, `gsm8k`, `phrase`, ...)."""

    text: str
    how: str


def braced_end(text: str, open_pos: int) -> int | None:
    """Index just past the `}` that closes the `{` at `open_pos`, or None if it never closes."""
    depth = 0
    for i in range(open_pos, len(text)):
        ch = text[i]
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{...}` or `\\fbox{...}` in `text`."""
    for m in reversed(list(_BOX_START.finditer(text))):
        if m.group(1) is None:  # `\boxed 5`: one token after a space
            token = re.match(r"\s*([^\s$]+)", text[m.end():])
            if token:
                return token.group(1)
            continue
        end = braced_end(text, m.end() - 1)
        if end is not None:
            return text[m.end():end - 1]
    return None


def _phrase_answer(text: str) -> str | None:
    matches = list(_ANSWER_PHRASE.finditer(text))
    for m in reversed(matches):
        rest = text[m.end():m.end() + MAX_ANSWER_CHARS]
        end = _SENTENCE_END.search(rest)
        candidate = (rest[:end.start()] if end else rest.split("\n", 1)[0])
        candidate = _REASON.split(candidate, 1)[0].strip(" \t*_")
        if candidate:
            return candidate
    return None


def _tag_answer(inner: str) -> str:
    """The answer inside `<answer>` tags: a box, an "answer is" phrase, the one number of a
    sentence (`The value is 5`), or the whole content (`5`, `x = 5`, `Monday`, `5 apples`)."""
    boxed = last_boxed(inner)
    if boxed is not None:
        return boxed
    phrase = _phrase_answer(inner)
    if phrase is not None:
        return phrase
    numbers = _NUMBER.findall(inner)
    if len(_WORDS.findall(inner)) >= 2 and len(numbers) == 1 and "\\" not in inner:
        return numbers[0]
    return inner.strip()


def extract_answer(text: str, last_number: bool = False) -> Extraction | None:
    """The final answer written in `text`, or None when it holds none."""
    tail = text[-MAX_SCAN_CHARS:]
    tags = _ANSWER_TAG.findall(tail)
    if tags:
        return Extraction(_tag_answer(tags[-1]), "answer_tag")
    boxed = last_boxed(tail)
    if boxed is not None:
        return Extraction(boxed, "boxed")
    gsm = _GSM8K.findall(tail)
    if gsm:
        return Extraction(gsm[-1].strip(), "gsm8k")
    phrase = _phrase_answer(tail)
    if phrase is not None:
        return Extraction(phrase, "phrase")
    if last_number:
        numbers = _NUMBER.findall(tail)
        if numbers:
            return Extraction(numbers[-1], "last_number")
    return None


def extract_reference(text: str) -> str:
    """The answer inside a reference that may be bare (`42`), boxed, or a full worked solution."""
    found = extract_answer(text)
    return text.strip() if found is None else found.text
