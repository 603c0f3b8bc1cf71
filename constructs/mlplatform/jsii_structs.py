"""Send jsii structs to Node with only the fields that are set.

jsii (1.142) serializes a struct by reading every property its class declares, set or not, so a typed
Deployment crosses to Node as a few hundred mostly-null fields that both sides then walk: a k8s PodSpec
declares about 40, a Container about 25. An unset optional field and a null one mean the same to the
jsii kernel (both are `undefined` in JavaScript), so sending only the set ones (a generated struct keeps
them in `_values`) changes nothing in the output and builds an environment several times faster
(bench/synth_bench.py measures it; the README's synthesis paragraph has its numbers).

`install()` (called by `mlplatform.synth.render`, never at import) replaces jsii's private
`_make_reference_for_native` with `_lean`, which handles structs and
hands everything else to the original. It refuses to install over a jsii it was not written for, and
tests/constructs/test_typed_constructs.py checks that the output is byte-identical with and without it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import jsii
import jsii._kernel as _kernel
from jsii._runtime import python_jsii_mapping

#: The jsii release whose serializer this module was written against (constraints.txt pins it).
JSII_VERSION = "1.142.0"

_stock: Callable[[Any, Any], Any] | None = None


def _lean(kernel: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return {"$jsii.map": {k: _lean(kernel, v) for k, v in value.items()}}
    if isinstance(value, list):
        return [_lean(kernel, item) for item in value]
    fqn = getattr(value, "__jsii_type__", None)
    values = getattr(value, "_values", None)
    if fqn is not None and isinstance(values, dict) and not isinstance(value, enum.Enum):
        mapping = python_jsii_mapping(value)
        if mapping is not None:  # a struct: python name -> jsii name of each declared field
            data = {mapping[name]: _lean(kernel, v) for name, v in values.items() if v is not None}
            return {"$jsii.struct": {"fqn": fqn, "data": data}}
    assert _stock is not None
    return _stock(kernel, value)


def install() -> bool:
    """Use the lean struct serializer from now on (idempotent). False where jsii is not the expected one."""
    global _stock
    if _stock is not None:
        return True
    original = getattr(_kernel, "_make_reference_for_native", None)
    if jsii.__version__ != JSII_VERSION or original is None:
        return False
    _stock = original
    _kernel._make_reference_for_native = _lean  # type: ignore[assignment]
    return True


def uninstall() -> None:
    """Back to jsii's own serializer (tests compare the two)."""
    global _stock
    if _stock is not None:
        _kernel._make_reference_for_native = _stock  # type: ignore[assignment]
        _stock = None
