"""Units written after a number: recognise them, convert within a dimension, drop plain words.

`split_unit("3\\text{ hours}")` gives `("3", Unit("time", 3600))`. A known unit carries a
dimension and a factor to that dimension's base unit, so `180 minutes` equals `3 hours` and
`5 km` differs from `5 m`. Area and volume (`cm^2`, `square feet`) and rates (`km/h`, `miles per
hour`) are derived from the table. Words that are not units (`3 apples`, `12 ways`) are dropped.

This is a small table of everyday units, not a units library: no temperature offsets, no
prefixes beyond the ones listed, no unit algebra inside expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Unit:
    """A dimension name (`length`, `time^-1*length`, ...) and the factor to its base unit."""

    dimension: str
    factor: Fraction


def _table() -> dict[str, tuple[str, Fraction]]:
    groups = {
        ("length", Fraction(1, 1000)): "mm millimeter millimeters millimetre millimetres",
        ("length", Fraction(1, 100)): "cm centimeter centimeters centimetre centimetres",
        ("length", Fraction(1)): "m meter meters metre metres",
        ("length", Fraction(1000)): "km kilometer kilometers kilometre kilometres",
        ("length", Fraction(254, 10000)): "in inch inches",
        ("length", Fraction(3048, 10000)): "ft foot feet",
        ("length", Fraction(9144, 10000)): "yd yard yards",
        ("length", Fraction(1609344, 1000)): "mi mile miles",
        ("time", Fraction(1)): "s sec secs second seconds",
        ("time", Fraction(60)): "min mins minute minutes",
        ("time", Fraction(3600)): "h hr hrs hour hours",
        ("time", Fraction(86400)): "day days",
        ("time", Fraction(604800)): "week weeks",
        ("mass", Fraction(1, 1000)): "mg milligram milligrams",
        ("mass", Fraction(1)): "g gram grams",
        ("mass", Fraction(1000)): "kg kilogram kilograms",
        ("mass", Fraction(45359237, 100000)): "lb lbs pound pounds",
        ("mass", Fraction(45359237, 1600000)): "oz ounce ounces",
        ("volume", Fraction(1, 1000)): "ml mL milliliter milliliters millilitre millilitres",
        ("volume", Fraction(1)): "l L liter liters litre litres",
        ("volume", Fraction(3785411784, 1000000000)): "gal gallon gallons",
        ("money", Fraction(1)): "dollar dollars usd USD",
        ("money", Fraction(1, 100)): "cent cents",
        ("angle", Fraction(1)): "degree degrees deg",
        # temperature scales are offset from each other: each is its own dimension, never converted
        ("celsius", Fraction(1)): "celsius Celsius",
        ("fahrenheit", Fraction(1)): "fahrenheit Fahrenheit",
        ("kelvin", Fraction(1)): "kelvin Kelvin",
    }
    return {word: key for key, words in groups.items() for word in words.split()}


UNITS = _table()
_RATES = {"mph": "mi/h", "kph": "km/h", "kmh": "km/h", "fps": "ft/s"}
_POWER_WORDS = {"square": 2, "sq": 2, "cubic": 3, "cu": 3}
_SHORT_WORDS = {"sq", "cu", "of", "an", "in", "on", "at", "to", "by", "is"}  # `12 sq units`, `1/2 of it`
_TEXT = re.compile(r"\\text\s*\{([^{}]*)\}")
_TAIL = re.compile(
    r"(?:(?<=[\d}).])|(?<=\s)|^)\s*(?P<tail>[A-Za-z][A-Za-z.\s/^{}0-9]*)$")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "frac",
               "arcsin", "arccos", "arctan", "max", "min", "gcd", "lcm", "det", "mod", "or", "and",
               "infty", "inf", "i", "e", "x", "y", "z", "n", "k", "a", "b", "c", "t", "r", "d"}


def _one_unit(words: list[str]) -> Unit | None:
    """`["square", "feet"]`, `["cm^2"]`, `["km"]` -> a Unit; None if not a known unit."""
    power = 1
    if len(words) == 2 and words[0].lower() in _POWER_WORDS:
        power, words = _POWER_WORDS[words[0].lower()], words[1:]
    if len(words) != 1:
        return None
    word = words[0].rstrip(".")
    m = re.fullmatch(r"([A-Za-z]+)\^\{?([23])\}?", word)
    if m:
        word, power = m.group(1), int(m.group(2))
    key = word if word in UNITS else word.lower()
    if key not in UNITS:
        return None
    dimension, factor = UNITS[key]
    return Unit(dimension if power == 1 else f"{dimension}^{power}", factor ** power)


def parse_unit(text: str) -> Unit | None:
    """A unit spelled `km/h`, `miles per hour`, `mph`, `cm^2`, `square feet`, or None."""
    text = text.strip()
    text = _RATES.get(text.lower(), text)
    parts = re.split(r"\s*/\s*|\s+per\s+", text)
    if len(parts) > 2:
        return None
    units = [_one_unit(p.split()) for p in parts]
    if any(u is None for u in units):
        return None
    if len(units) == 1:
        return units[0]
    top, bottom = units
    return Unit(f"{top.dimension}/{bottom.dimension}", top.factor / bottom.factor)


_COMPOUND = re.compile(
    r"^(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*(?:and\s*|,\s*)?(\d+(?:\.\d+)?)\s*([A-Za-z]+)$")


def _compound(plain: str) -> tuple[str, Unit | None] | None:
    """`1 hour 30 minutes`, `5 feet 6 inches`: one number in the base unit of the dimension."""
    m = _COMPOUND.match(plain)
    if not m:
        return None
    first, second = parse_unit(m.group(2)), parse_unit(m.group(4))
    if first is None or second is None or first.dimension != second.dimension:
        return None
    total = Fraction(m.group(1)) * first.factor + Fraction(m.group(3)) * second.factor
    return f"{total.numerator}/{total.denominator}", Unit(first.dimension, Fraction(1))


def split_unit(text: str) -> tuple[str, Unit | None]:
    """Split `text` into the number-like part and its unit; plain trailing words are dropped.

    A single trailing letter counts as a unit only when it is a known unit written apart from
    the number (`5 m`, `5\\text{m}`): `2x` is algebra, not two of unit x.
    """
    had_text = "\\text" in text
    plain = _TEXT.sub(lambda m: " " + m.group(1) + " ", text).strip()
    plain = re.sub(r"\s*\^\s*", "^", plain)
    compound = _compound(plain)
    if compound is not None:
        return compound
    m = _TAIL.search(plain)
    if not m:
        return text, None
    head, tail = plain[:m.start("tail")].strip(), m.group("tail").strip()
    if not head or not re.search(r"[\d}]$|\.\d*$|\\pi$|\)$", head):
        return text, None
    unit = parse_unit(tail)
    spaced = plain[m.start("tail") - 1:m.start("tail")].isspace() or had_text
    words = tail.replace("/", " ").split()
    if unit is not None and (spaced or len(tail) > 1):
        return head, unit
    if words and any(len(w) >= 3 for w in words) and all(
            w.rstrip(".").isalpha() and (len(w) >= 3 or w.lower() in _SHORT_WORDS)
            and w.lower() not in _MATH_WORDS for w in words):
        return head, None  # `3 apples`: plain words after a number are not part of the answer
    return text, None
