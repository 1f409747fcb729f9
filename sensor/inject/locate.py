"""Resolve a probe location to a code object without running user code.

``module:qualname`` walks the module's and classes' ``__dict__`` (no ``getattr``, so no
descriptor, property or ``__getattr__`` runs), unwraps staticmethod, classmethod, property
(``fget``), cached_property and ``functools.wraps`` decorators (``__wrapped__``), and finds
``f.<locals>.g`` among the constants of ``f``'s code. ``path.py:LINE`` finds the module whose
file ends with the path and the outermost function whose own lines contain the line.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Iterator
from types import CodeType, FunctionType, ModuleType

__all__ = [
    "NotFound",
    "code_lines",
    "codeless_line_reason",
    "find_code_for_line",
    "find_module_for_path",
    "module_file",
    "path_matches",
    "resolve_qualname",
]


class NotFound(Exception):
    """The location does not name code in this process; the message says what is missing."""


def module_file(module: ModuleType) -> str | None:
    value = vars(module).get("__file__")
    return value if isinstance(value, str) else None


def path_matches(filename: str | None, suffix: str) -> bool:
    """True when ``filename`` ends with ``suffix`` at a path-component boundary."""
    if not filename:
        return False
    norm = filename.replace(os.sep, "/")
    want = suffix.replace(os.sep, "/")
    while want.startswith("./"):
        want = want[2:]
    return norm == want or norm.endswith("/" + want.lstrip("/"))


def find_module_for_path(suffix: str) -> ModuleType | None:
    for module in list(sys.modules.values()):
        if isinstance(module, ModuleType) and path_matches(module_file(module), suffix):
            return module
    return None


def code_lines(code: CodeType) -> set[int]:
    """The lines that the code object's own instructions belong to (nested code excluded)."""
    return {line for _, _, line in code.co_lines() if line is not None}


def codeless_line_reason(lines: set[int], line: int) -> str | None:
    """Why ``line``, inside the span of a function whose code lines are ``lines``, takes no
    probe, naming the nearest lines that do; None when the line is outside that span."""
    if not lines or not min(lines) < line < max(lines):
        return None
    after = min(n for n in lines if n > line)
    before = max(n for n in lines if n < line)
    return (
        "has no code of its own (a comment, a blank line or a docstring); "
        f"next line with code: {after}, previous: {before}"
    )


def _nested(code: CodeType) -> Iterator[CodeType]:
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield const
            yield from _nested(const)


def _static_lookup(obj: object, name: str) -> object:
    """Find ``name`` on a module or in a class's MRO ``__dict__`` without running descriptors."""
    if isinstance(obj, ModuleType):
        namespace = vars(obj)
        if name in namespace:
            return namespace[name]
        raise NotFound(f"module {obj.__name__!r} has no attribute {name!r}")
    if isinstance(obj, type):
        for klass in type.__dict__["__mro__"].__get__(obj):
            namespace = type.__dict__["__dict__"].__get__(klass)
            if name in namespace:
                return namespace[name]
        raise NotFound(f"class {obj.__qualname__!r} has no attribute {name!r}")
    raise NotFound(f"{name!r} is looked up on a {type(obj).__name__}, expected a module or class")


def _function_of(obj: object) -> object:
    """The function behind staticmethod, classmethod, property (fget) or cached_property."""
    if isinstance(obj, staticmethod | classmethod):
        return obj.__func__
    if isinstance(obj, property):
        return obj.fget
    if isinstance(obj, functools.cached_property):
        return obj.func
    return obj


def _wrapped_chain(obj: object) -> list[FunctionType]:
    """``obj`` and every function behind it through ``__wrapped__`` (read from ``__dict__``)."""
    chain: list[FunctionType] = []
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        obj = _function_of(obj)
        if isinstance(obj, FunctionType):
            chain.append(obj)
        try:
            namespace = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            break
        obj = namespace.get("__wrapped__") if isinstance(namespace, dict) else None
    return chain


def resolve_qualname(module: ModuleType, qualname: str) -> CodeType:
    """The code object that ``module:qualname`` names; raise NotFound with the reason."""
    parts = qualname.split(".")
    head: list[str] = []
    for part in parts:
        if part == "<locals>":
            break
        head.append(part)
    obj: object = module
    for part in head:
        obj = _function_of(obj) if not isinstance(obj, ModuleType | type) else obj
        obj = _static_lookup(obj, part)
    chain = _wrapped_chain(obj)
    if not chain:
        raise NotFound(
            f"{module.__name__}:{'.'.join(head)} is a {type(obj).__name__}, expected a function "
            "(or a method, staticmethod, classmethod, property or decorated function)"
        )
    prefix = ".".join(head)
    # Prefer the function whose own qualname is the one asked for (the decorated original).
    code = next((f.__code__ for f in chain if f.__code__.co_qualname == prefix), None)
    if code is None:
        code = chain[-1].__code__
    if len(head) == len(parts):
        return code
    tail = qualname[len(prefix) :]  # ".<locals>.g"
    nested_codes = list(_nested(code))
    for nested in nested_codes:
        if nested.co_qualname == qualname:
            return nested
    for nested in nested_codes:
        if nested.co_qualname.endswith(tail):
            return nested
    raise NotFound(f"{module.__name__}:{prefix} defines no nested function {qualname!r}")


def _module_codes(module: ModuleType) -> Iterator[tuple[int, CodeType]]:
    """(nesting depth, code) for every code object reachable from the module's namespace."""
    name = module.__name__
    seen_classes: set[int] = set()
    stack: list[object] = list(vars(module).values())
    while stack:
        obj = stack.pop()
        if isinstance(obj, type):
            if id(obj) in seen_classes or vars(obj).get("__module__") != name:
                continue
            seen_classes.add(id(obj))
            for value in list(type.__dict__["__dict__"].__get__(obj).values()):
                if isinstance(value, property):
                    stack.extend(v for v in (value.fget, value.fset, value.fdel) if v is not None)
                else:
                    stack.append(value)
            continue
        for fn in _wrapped_chain(obj):
            yield 0, fn.__code__
            for nested in _nested(fn.__code__):
                yield nested.co_qualname.count("."), nested


def find_code_for_line(module: ModuleType, filename: str, line: int) -> CodeType:
    """The outermost function code object of ``filename`` whose own lines contain ``line``."""
    best: tuple[int, CodeType] | None = None
    for depth, code in _module_codes(module):
        if (
            code.co_filename == filename
            and line in code_lines(code)
            and (best is None or depth < best[0])
        ):
            best = (depth, code)
    if best is None:
        # Functions the namespace does not reach (registered in a dict, made by a factory...).
        for obj in gc.get_objects():
            if isinstance(obj, FunctionType) and obj.__code__.co_filename == filename:
                for code in (obj.__code__, *_nested(obj.__code__)):
                    if line in code_lines(code):
                        depth = code.co_qualname.count(".")
                        if best is None or depth < best[0]:
                            best = (depth, code)
    if best is None:
        # A line inside a function's span that holds no code: name the (innermost) function and
        # the nearest lines that do, rather than call it module-level code.
        for depth, code in _module_codes(module):
            if code.co_filename == filename:
                why = codeless_line_reason(code_lines(code), line)
                if why is not None and (best is None or depth > best[0]):  # the innermost
                    best = (depth, code)
        if best is not None:
            code = best[1]
            why = codeless_line_reason(code_lines(code), line)
            raise NotFound(f"line {line} of {filename} is inside {code.co_qualname} but {why}")
        raise NotFound(
            f"line {line} of {filename} is not inside any function of module {module.__name__!r} "
            "(module-level code ran at import; put the probe inside a function)"
        )
    return best[1]
