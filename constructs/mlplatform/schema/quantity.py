"""Kubernetes resource quantities (`500m`, `2`, `1.5Gi`, `1e3`): strings or numbers, compared exactly.

The grammar is Kubernetes' own (k8s.io/apimachinery `resource.Quantity`) without a sign: a decimal number,
then a binary suffix (Ki..Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$"
ALLOWED = "a Kubernetes quantity such as 500m, 2, 512Mi or 10Gi (numbers are accepted too)"

_MATCH = re.compile(PATTERN)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def from_number(value: Any) -> Any:
    """`cpu: 1` or `cpu: 0.5` in YAML: the quantity as Kubernetes prints it ("1", "0.5"); others unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    number = Decimal(repr(value))
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def parse(quantity: str) -> Decimal:
    """The exact value of a quantity (`1Gi` -> 1073741824, `500m` -> 0.5). Raises ValueError."""
    match = _MATCH.match(quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not {ALLOWED}")
    number, suffix = Decimal(match[1]), match[3] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return number.scaleb(int(suffix[1:]))
    return number.scaleb(_DECIMAL[suffix])


#: A Kubernetes resource quantity. Numbers are accepted and stored as the string Kubernetes would print.
Quantity = Annotated[str, StringConstraints(pattern=PATTERN), BeforeValidator(from_number)]
