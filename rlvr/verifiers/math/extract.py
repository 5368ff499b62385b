"""Find the final answer in a completion (or in a reference solution).

Which marker wins, in a completion:
1. the last `<answer>...</answer>` block, whatever else the text holds (a `\\boxed{}` or an
   "answer is" phrase inside it wins; a sentence with a single number gives that number);
2. else the last Minerva closing sentence, "The final answer is 12. I hope it is correct.": the
   format ends the answer there, and what a model writes after it is a new problem;
3. else the marker that comes *last* among: the last group of `\\boxed{...}` / `\\fbox{...}`,
   a GSM8K `#### 42` line (after a box, only a bare one: `#### Verification` is a markdown
   heading), and an explicit "final answer" phrase ("The final answer is 12",
   "Final Answer: 12"): a model that boxes an intermediate value and then states its final
   answer is graded on the final statement. A final-answer phrase after a box overrides it only
   when it states an answer (a number, some math or a choice letter), not prose ("the final
   answer is correct", "... is what we found above");
4. else the last "the answer is ..." phrase, up to the end of its sentence ("12. I hope it is
   correct." ends after `12`).
   A phrase's answer that is a prose sentence with one number is that number ("Final Answer:
   The largest $n$ is 34." gives `34`);
5. only when asked for (`last_number=True`): the last number written anywhere.

Several boxes: boxes joined only by connectors (`,`, `;`, "and", "or", math delimiters and
labels such as `x =`) form one group, and a group of several distinct boxes is one answer, the
list of their contents (`\\boxed{1}` and `\\boxed{-2}` reads as `1, -2`). Boxes separated by
other text are earlier, intermediate answers: the last group is the answer. A *reference* whose
distinct boxes do not form one group is ambiguous (`AmbiguousAnswer`): which of them is the
answer cannot be known, so it is reported, never chosen silently.

Only a bounded tail of the text is scanned (`MAX_SCAN_CHARS`): answers come last, and a hostile
100k-character completion costs linear time at most. This module does not normalise or judge the
answer; `normalize` and `parse` do that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SCAN_CHARS = 50_000  # tail of the completion that is searched for an answer
MAX_ANSWER_CHARS = 2_000  # a longer extracted answer is not parsed (status "unparsable")
MAX_BOXES = 64  # boxes beyond this many (from the end) are not looked at
MAX_MINERVA_CHARS = 500  # "The final answer is ... I hope it is correct." answers are short

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_GSM8K = re.compile(r"####\s*([^\n]+)")
_ANSWER_PHRASE = re.compile(
    r"(?:(?:the\s+)?(?:final\s+)?answer\s*(?:is|=|:)|final\s+answer\s*[:=]?)\s*[:]?\s*", re.I)
_FINAL_PHRASE = re.compile(r"final\s+answer", re.I)
_MINERVA = re.compile(r"final\s+answer\s*(?:is|:)\s*:?\s*(.{1,%d}?)\s*\.?\s*I\s+hope\s+it\s+is\s+correct"
                      % MAX_MINERVA_CHARS, re.I | re.S)
_INNER_PHRASE = re.compile(r"^.*?final\s+answer\s+is\s*:?\s*", re.I | re.S)
_QUOTES = " \t\"'`*_"
_ANSWER_LIKE = re.compile(r"[\d\\$]|^\s*\(?[A-J]\)?\s*$")  # a number, some math, or a choice
# A sentence ends at a full stop followed by a capital letter, a new paragraph or the end; not
# after `\.`, and not inside `3.5` or after an abbreviation followed by a lower-case word.
_SENTENCE_END = re.compile(
    r"(?<!\\)\.(?=\s*$|\s+[A-Z(\\]|\s*\n)|(?<![\d\\])\.(?=\s)|\n\s*\n|\.\s*\$(?:\s|$)")
_WORDS = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_REASON = re.compile(r",?\s+(?:because|since|as|which|where|so that)\s", re.I)  # `4 because ...`
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")
_CONNECTOR = re.compile(
    r"(?:\s|\$|\\[()\[\]]|[,;&~]|\\[,;:! ]|\\q?quad\b|\\text\s*\{\s*(?:and|or|,)?\s*\}|\band\b|\bor\b"
    r"|\([a-z]\)|(?:\\?[A-Za-z]+(?:_\{?\w+\}?)?'?|\([A-Za-z, ]+\))\s*(?:=|:)(?!=))*", re.I)
MAX_CONNECTOR_CHARS = 60
_BOX_LABEL = re.compile(r"(?<![\\A-Za-z])([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*\$?\s*\\?\(?\s*$")
_PROSE_WORDS = 4  # a final-answer phrase with this many words is prose, not an answer


class AmbiguousAnswer(ValueError):
    """A reference whose boxes cannot be combined into one answer."""


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and how it was found (`boxed`, `boxes`, `answer_tag`, `gsm8k`,
    `final_phrase`, `phrase`, `last_number`). `boxes` is a group of several boxes whose contents
    are joined into one list in `text`."""

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


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """`(start, end, content)` of the last `MAX_BOXES` complete boxes, in text order."""
    found = []
    for m in reversed(list(_BOX_START.finditer(text))[-MAX_BOXES:]):
        if m.group(1) is None:  # `\boxed 5`: one token after a space
            token = re.match(r"\s*([^\s$]+)", text[m.end():])
            if token:
                found.append((m.start(), m.end() + token.end(), token.group(1)))
            continue
        end = braced_end(text, m.end() - 1)
        if end is not None and not any(start < end for start, _, _ in found[-1:]):
            found.append((m.start(), end, text[m.end():end - 1]))
    return found[::-1]


def last_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{...}` or `\\fbox{...}` in `text`."""
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def _joined(between: str) -> bool:
    """Whether the text between two boxes only connects them (`, `, ` and `, `$ or $x = `)."""
    if len(between) > MAX_CONNECTOR_CHARS:
        return False
    return _CONNECTOR.fullmatch(between) is not None


def _box_groups(text: str) -> list[list[tuple[int, int, str]]]:
    """The boxes of `text` in groups of boxes joined only by connectors, in text order."""
    groups: list[list[tuple[int, int, str]]] = []
    for box in _boxes(text):
        if groups and _joined(text[groups[-1][-1][1]:box[0]]):
            groups[-1].append(box)
        else:
            groups.append([box])
    return groups


def _distinct(contents: list[str]) -> list[str]:
    seen, kept = set(), []
    for c in contents:
        key = re.sub(r"\s+", "", c)
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def _group_answer(text: str, group: list[tuple[int, int, str]]) -> Extraction:
    """One box's content, or the list of a group's distinct boxes, each with the label written
    just before it (`$a = \\boxed{3}$ and $b = \\boxed{5}$` reads as `a = 3, b = 5`)."""
    contents = _distinct([c for _, _, c in group])
    if len(contents) == 1:
        return Extraction(contents[0], "boxed")
    labelled = []
    for start, _, content in group:
        label = _BOX_LABEL.search(text, max(0, start - MAX_CONNECTOR_CHARS), start)
        labelled.append(f"{label.group(1)} = {content.strip()}" if label and "=" not in content
                        else content.strip())
    return Extraction(", ".join(_distinct(labelled)), "boxes")


def _phrase_answer(text: str, final_only: bool = False) -> tuple[int, str] | None:
    """`(position, answer)` of the last answer phrase with a non-empty answer."""
    for m in reversed(list(_ANSWER_PHRASE.finditer(text))):
        if final_only and not _FINAL_PHRASE.search(m.group(0)):
            continue
        rest = text[m.end():m.end() + MAX_ANSWER_CHARS]
        end = _SENTENCE_END.search(rest)
        candidate = (rest[:end.start()] if end else rest.split("\n", 1)[0])
        candidate = _REASON.split(candidate, 1)[0].strip(_QUOTES)
        if candidate:
            return m.start(), _sentence_answer(candidate)
    return None


def _sentence_answer(text: str) -> str:
    """The one number of a sentence given as the answer (`The largest $n$ is 34` -> `34`), or
    the text itself when it is not such a sentence."""
    plain = re.sub(r"\$[^$]*\$", " ", text)  # `$ABCD$`, `$n$`: names in math mode
    numbers = _NUMBER.findall(plain)
    if len(_WORDS.findall(plain)) >= 2 and len(numbers) == 1 and "\\" not in plain:
        return numbers[0]
    return text


def _overrides(answer: str) -> bool:
    """Whether a final-answer phrase after a box states an answer (`12`, `$x = 3$`, `(B)`), not
    prose about it (`correct`, `the value we found above`)."""
    plain = re.sub(r"\\text\s*\{[^{}]*\}", " ", answer)
    return len(_WORDS.findall(plain)) < _PROSE_WORDS and _ANSWER_LIKE.search(answer) is not None


def _bare_answer(line: str) -> bool:
    """`42`, `$1,200`, `\\frac{3}{4}`: an answer with no word in it."""
    return _ANSWER_LIKE.search(line) is not None and not _WORDS.findall(line)


def _tag_answer(inner: str) -> str:
    """The answer inside `<answer>` tags: a box, an "answer is" phrase, the one number of a
    sentence (`The value is 5`), or the whole content (`5`, `x = 5`, `Monday`, `5 apples`)."""
    groups = _box_groups(inner)
    if groups:
        return _group_answer(inner, groups[-1]).text
    phrase = _phrase_answer(inner)
    if phrase is not None:
        return phrase[1]
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
    minerva = list(_MINERVA.finditer(tail))
    if minerva:  # the format's closing sentence: what follows it is a new problem
        answer = _INNER_PHRASE.sub("", minerva[-1].group(1)).replace('\\"', "").strip(_QUOTES)
        boxed = _box_groups(answer)
        if boxed:
            return _group_answer(answer, boxed[-1])
        return Extraction(_sentence_answer(answer), "final_phrase")
    candidates: list[tuple[int, Extraction]] = []
    groups = _box_groups(tail)
    if groups:
        candidates.append((groups[-1][0][0], _group_answer(tail, groups[-1])))
    gsm = [m for m in _GSM8K.finditer(tail) if not candidates or _bare_answer(m.group(1))]
    if gsm:  # after a box, only a bare `#### 42` counts: `#### Verification` is a heading
        candidates.append((gsm[-1].start(), Extraction(gsm[-1].group(1).strip(), "gsm8k")))
    final = _phrase_answer(tail, final_only=True)
    if final is not None and not (candidates and not _overrides(final[1])):
        if not _BOX_START.search(final[1]):  # `The final answer is $\boxed{5}$`: the box above
            candidates.append((final[0], Extraction(final[1], "final_phrase")))
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    phrase = _phrase_answer(tail)
    if phrase is not None:
        return Extraction(phrase[1], "phrase")
    if last_number:
        numbers = _NUMBER.findall(tail)
        if numbers:
            return Extraction(numbers[-1], "last_number")
    return None


def extract_reference(text: str) -> str:
    """The answer inside a reference that may be bare (`42`), boxed, or a full worked solution.

    All of its boxes count: several distinct boxes must form one group (`\\boxed{1}` and
    `\\boxed{-2}`), else `AmbiguousAnswer`.
    """
    groups = [g for g in _box_groups(text[-MAX_SCAN_CHARS:]) if g]
    if len(groups) > 1:
        contents = _distinct([c for g in groups for _, _, c in g])
        last = _distinct([c for _, _, c in groups[-1]])
        if len(contents) > len(last):
            raise AmbiguousAnswer(f"the reference has {len(contents)} different boxes that are not "
                                  "one answer (separated by text)")
    found = extract_answer(text)
    return text.strip() if found is None else found.text
