"""A strict validator for the part of JSON Schema the hub's OpenAPI document uses.

Every request body is checked against its schema in ``sensor.hub.openapi.SCHEMAS`` before a
handler reads it, so the published document is the contract and cannot drift from the code.
Schemas are compiled once into closures (a batch of 500 hits is checked in about a
millisecond). Supported: ``$ref``, ``anyOf``, ``type``, ``enum``, ``const``, ``properties``,
``required``, ``additionalProperties``, ``maxProperties``, ``propertyNames``, ``items``,
``minItems``, ``maxItems``, ``minLength``, ``maxLength``, ``pattern``, ``minimum``,
``maximum``, ``exclusiveMinimum``; ``description`` and ``format`` are documentation. Any other
keyword is a programming error, raised when the schema is compiled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SchemaError", "Validator", "compile_schema", "describe"]

#: Checks a value; raises :class:`SchemaError` (whose path parents fill in on the way up).
Validator = Callable[[Any], None]

_DOC_KEYWORDS = frozenset({"description", "format", "title", "examples", "default"})
_KNOWN = _DOC_KEYWORDS | {
    "$ref",
    "anyOf",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "maxProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
}


class SchemaError(ValueError):
    """One value that breaks its schema: where, what was got, what was expected.

    ``unknown`` is True when the problem is a field the schema does not allow. The path is
    built only on failure: each enclosing object or list adds its key as the error passes.
    """

    def __init__(self, value: Any, expected: str, *, unknown: bool = False) -> None:
        super().__init__(expected)
        self.value = value
        self.expected = expected
        self.unknown = unknown
        self._parts: list[str | int] = []  # innermost first

    def inside(self, part: str | int) -> SchemaError:
        self._parts.append(part)
        return self

    @property
    def path(self) -> str:
        text = ""
        for part in reversed(self._parts):
            if isinstance(part, int):
                text += f"[{part}]"
            elif part.isidentifier():
                text += f".{part}" if text else part
            else:
                text += f"[{ascii(part)[:80]}]"
        return text or "body"

    def __str__(self) -> str:
        return f"{self.path}: got {_show(self.value)}, expected {self.expected}"


def _show(value: Any) -> str:
    text = ascii(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _is_type(name: str) -> Callable[[Any], bool]:
    if name == "string":
        return lambda v: type(v) is str
    if name == "integer":
        return lambda v: type(v) is int
    if name == "number":
        return lambda v: type(v) is int or type(v) is float
    if name == "boolean":
        return lambda v: type(v) is bool
    if name == "object":
        return lambda v: type(v) is dict
    if name == "array":
        return lambda v: type(v) is list
    if name == "null":
        return lambda v: v is None
    raise ValueError(f"schema type {name!r}: not supported")


def describe(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> str:
    """What a schema expects, in words (used in error messages)."""
    if "$ref" in schema:
        return describe(definitions[schema["$ref"].rsplit("/", 1)[1]], definitions)
    if "anyOf" in schema:
        return " or ".join(describe(option, definitions) for option in schema["anyOf"])
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(item) for item in schema["enum"])
    kind = schema.get("type")
    text = _TYPE_NAMES.get(kind, "a value") if isinstance(kind, str) else "a value"
    bounds = []
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if high is not None:
        bounds.append(f"{low} to {high} characters" if low else f"at most {high} characters")
    elif low:
        bounds.append(f"at least {low} characters")
    if "pattern" in schema:
        bounds.append(f"matching {schema['pattern']}")
    if "minimum" in schema:
        bounds.append(f">= {_num_text(schema['minimum'])}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {_num_text(schema['exclusiveMinimum'])}")
    if "maximum" in schema:
        bounds.append(f"<= {_num_text(schema['maximum'])}")
    if "maxItems" in schema:
        bounds.append(f"at most {schema['maxItems']} items")
    if "maxProperties" in schema:
        bounds.append(f"at most {schema['maxProperties']} entries")
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = "an object of " + _plural(describe(schema["additionalProperties"], definitions))
    if kind == "array" and isinstance(schema.get("items"), dict):
        text = "a list of " + _plural(describe(schema["items"], definitions))
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _num_text(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            head, _, rest = text[len(article) :].partition(" ")
            return f"{head}s {rest}".rstrip()
    return text


def compile_schema(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> Validator:
    """One validator for ``schema``; ``$ref``s resolve in ``definitions`` (by name)."""
    cache: dict[str, Validator] = {}
    return _compile(schema, definitions, cache)


def _compile(
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    cache: dict[str, Validator],
    *,
    nullable: bool = False,
    expected: str | None = None,
) -> Validator:
    """One closure per schema where possible: each call level costs, and hits are many."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keywords {sorted(unknown)}: not supported by the hub validator")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name not in cache:
            slot: list[Validator] = []
            cache[name] = lambda value: slot[0](value)  # recursion-safe forward
            slot.append(_compile(definitions[name], definitions, cache))
        found = cache[name]
        if not nullable:
            return found

        def nullable_ref(value: Any) -> None:
            if value is not None:
                found(value)

        return nullable_ref
    if expected is None:
        expected = describe(schema, definitions)
    if "anyOf" in schema:
        return _any_of(schema, definitions, cache, nullable, expected)
    if set(schema) - _DOC_KEYWORDS == {"enum"}:
        return _enum(list(schema["enum"]), nullable, expected)
    kind = schema.get("type")
    if kind == "string":
        return _string(schema, nullable, expected)
    if kind in ("integer", "number"):
        return _number(schema, kind, nullable, expected)
    if kind == "array":
        return _array_check(schema, definitions, cache, nullable, expected)
    if kind == "object":
        return _object_check(schema, definitions, cache, nullable, expected)
    if kind in ("boolean", "null"):
        is_kind = _is_type(kind)

        def check_type(value: Any) -> None:
            if not is_kind(value) and not (nullable and value is None):
                raise SchemaError(value, expected)

        return check_type
    if kind is None and set(schema) <= _DOC_KEYWORDS:
        return lambda value: None  # {}: anything
    raise ValueError(f"schema {dict(schema)!r}: not supported by the hub validator")


def _any_of(
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    cache: dict[str, Validator],
    nullable: bool,
    expected: str,
) -> Validator:
    null = {"type": "null"}
    real = [option for option in schema["anyOf"] if option != null]
    nullable = nullable or len(real) < len(schema["anyOf"])
    if len(real) == 1:  # the common "X or null"
        return _compile(real[0], definitions, cache, nullable=nullable, expected=expected)
    options = [_compile(option, definitions, cache) for option in real]

    def any_of(value: Any) -> None:
        if value is None and nullable:
            return
        errors = []
        for option in options:
            try:
                option(value)
                return
            except SchemaError as exc:
                errors.append(exc)
        # the deepest error says the most (a field inside an object, not "not an object")
        deepest = max(errors, key=lambda exc: len(exc._parts))
        if deepest._parts:
            raise deepest
        raise SchemaError(value, expected)

    return any_of


def _enum(choices: list[Any], nullable: bool, expected: str) -> Validator:
    strings = frozenset(c for c in choices if type(c) is str)

    def check_enum(value: Any) -> None:
        if type(value) is str and value in strings:
            return
        if value is None and nullable:
            return
        if not any(value == c and type(value) is type(c) for c in choices):
            raise SchemaError(value, expected)

    return check_enum


def _string(schema: Mapping[str, Any], nullable: bool, expected: str) -> Validator:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

    def check_string(value: Any) -> None:
        if type(value) is not str:
            if value is None and nullable:
                return
            raise SchemaError(value, expected)
        if len(value) < low or (high is not None and len(value) > high):
            raise SchemaError(value, expected)
        if pattern is not None and pattern.search(value) is None:
            raise SchemaError(value, expected)

    return check_string


def _number(schema: Mapping[str, Any], kind: str, nullable: bool, expected: str) -> Validator:
    low = schema.get("minimum")
    high = schema.get("maximum")
    above = schema.get("exclusiveMinimum")
    floats = kind == "number"

    def check_number(value: Any) -> None:
        t = type(value)
        if t is not int and not (floats and t is float):
            if value is None and nullable:
                return
            raise SchemaError(value, expected)
        if (
            (low is not None and value < low)
            or (high is not None and value > high)
            or (above is not None and value <= above)
        ):
            raise SchemaError(value, expected)

    return check_number


def _array_check(
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    cache: dict[str, Validator],
    nullable: bool,
    expected: str,
) -> Validator:
    items = _compile(schema["items"], definitions, cache) if "items" in schema else None
    low = schema.get("minItems")
    high = schema.get("maxItems")

    def check(value: Any) -> None:
        if type(value) is not list:
            if value is None and nullable:
                return
            raise SchemaError(value, expected)
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise SchemaError(f"a list of {len(value)} items", expected)
        if items is not None:
            for index, item in enumerate(value):
                try:
                    items(item)
                except SchemaError as exc:
                    raise exc.inside(index) from None

    return check


def _object_check(
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    cache: dict[str, Validator],
    nullable: bool,
    expected: str,
) -> Validator:
    properties = {
        name: _compile(sub, definitions, cache)
        for name, sub in (schema.get("properties") or {}).items()
    }
    required = list(schema.get("required") or ())
    extra = schema.get("additionalProperties", True)
    extra_check = _compile(extra, definitions, cache) if isinstance(extra, dict) else None
    closed = extra is False
    allowed = frozenset(properties)
    most = schema.get("maxProperties")
    names = (
        _compile(schema["propertyNames"], definitions, cache) if "propertyNames" in schema else None
    )
    nothing_per_entry = not properties and names is None and extra_check is None

    def check(value: Any) -> None:
        if type(value) is not dict:
            if value is None and nullable:
                return
            raise SchemaError(value, expected)
        if most is not None and len(value) > most:
            raise SchemaError(f"an object of {len(value)} entries", expected)
        for name in required:
            if name not in value:
                raise SchemaError(None, "a value (the field is required)").inside(name)
        if closed and not allowed.issuperset(value):
            unknown = sorted(set(value) - allowed)
            raise SchemaError(
                unknown,
                f"only the fields {', '.join(sorted(allowed))} (unknown: {', '.join(unknown)})",
                unknown=True,
            )
        if nothing_per_entry:
            return  # {"type": "object"}: walking a hit's captures would check nothing
        get = properties.get
        for key, item in value.items():
            try:
                if names is not None:
                    names(key)
                validator = get(key)
                if validator is not None:
                    validator(item)
                elif extra_check is not None:
                    extra_check(item)
            except SchemaError as exc:
                raise exc.inside(key) from None

    return check
