"""How durable state is written: plain JSON, never pickle.

DBOS stores workflow arguments, step results and errors through one
``Serializer``. Its default pickles, which ties the stored rows to the exact
classes of the code that wrote them and runs code when read. Ours writes JSON:
values must already be JSON (dicts, lists, strings, numbers, booleans, None);
a pydantic model crosses the seam as ``.wire()`` / ``model_dump(mode="json")``
and is validated back by the caller (``durable.steps`` does this for messages).

Exceptions are the one non-JSON value DBOS hands us (a step or workflow that
raised). They are written as their class path, ``args`` and JSON-safe
attributes, and rebuilt on read without calling ``__init__``, so a replayed
``ProviderError`` still has its ``status`` and ``retryable``. Only classes from
``builtins``, ``flotilla`` and ``dbos`` are rebuilt; any other class comes back
as a ``RunError`` naming it.
"""

from __future__ import annotations

import importlib
import json
import math
from typing import Any

from dbos import Serializer

from ..errors import RunError

_ERROR_TAG = "__flotilla_error__"
_REBUILDABLE = ("builtins", "flotilla", "dbos")


class JsonSerializer(Serializer):
    """DBOS's serializer plug, writing compact JSON."""

    def name(self) -> str:
        # Recorded with every row: changing it makes DBOS refuse older rows.
        return "flotilla_json"

    def serialize(self, data: Any) -> str:
        return json.dumps(_encode(data, "value"), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)

    def deserialize(self, serialized_data: str) -> Any:
        return _decode(json.loads(serialized_data))


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"durable {where} holds the float {value}, which JSON cannot carry")
        return value
    if isinstance(value, BaseException):
        return _encode_error(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"durable {where} has the non-string key {key!r}; JSON keys are strings")
            out[key] = _encode(item, f"{where}.{key}")
        if _ERROR_TAG in out:
            raise TypeError(f"durable {where} uses the reserved key {_ERROR_TAG!r}")
        return out
    raise TypeError(
        f"durable {where} is a {type(value).__module__}.{type(value).__qualname__}, not JSON. "
        "Fix: pass or return plain JSON (a pydantic model as .wire() or model_dump(mode='json'), "
        "a dataclass as dataclasses.asdict) and rebuild it on the other side")


def _encode_error(error: BaseException) -> dict[str, Any]:
    attrs = {}
    for key, item in vars(error).items():
        if key.startswith("__"):
            continue
        try:
            attrs[key] = _encode(item, key)
        except TypeError:
            continue  # attributes that are not JSON are dropped; the message keeps the gist
    args = []
    for arg in error.args:
        try:
            args.append(_encode(arg, "args"))
        except TypeError:
            args.append(str(arg))
    cls = type(error)
    return {_ERROR_TAG: {"type": f"{cls.__module__}:{cls.__qualname__}", "args": args,
                         "attrs": attrs, "message": str(error)}}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if _ERROR_TAG in value and len(value) == 1:
            return _decode_error(value[_ERROR_TAG])
        return {k: _decode(v) for k, v in value.items()}
    return value


def _decode_error(data: dict[str, Any]) -> BaseException:
    cls = _error_class(data["type"])
    if cls is None:
        return RunError(f"{data['type'].replace(':', '.')}: {data['message']}")
    error = cls.__new__(cls)
    error.args = tuple(data["args"])
    vars(error).update(data["attrs"])
    return error


def _error_class(path: str) -> type[BaseException] | None:
    module_name, _, qualname = path.partition(":")
    if module_name.split(".")[0] not in _REBUILDABLE:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None
