"""The fused form of a typical expectation: one generated Python function that evaluates it on
the values the hook has at hand, for exact builtin values (and exact Decimals) only, or answers
:data:`FALLBACK`.

:class:`sensor.hotpath.FastExpectGate` evaluates an expectation on every call its rate admits.
The sandbox's compiled closures (:mod:`sensor.expressions.compiler`) cost a Python call per
syntax node, a state list, and a mapping of the locals per evaluation; for the typical shapes
(``result == sum(prices)``, ``0 <= discount <= price``, ``isinstance(name, str) and len(name) <
64``, ``status in ('paid', 'shipped')``, ``order['total'] >= 0``, ``abs(result - expected) <=
1``, ``all(p >= 0 for p in prices)``, ``coupon is None or isinstance(coupon, str)``,
``result['currency'] == currency``) that is most of an evaluation. :func:`fuse` writes the
whole expression as one function ``fused(v, a0, a1)`` of the probe's value and the locals the
backend passes (see :func:`sensor.guards.locals_of`), once, when the hook is built or the
redaction rules change.

What it answers is what the closures answer, because it only answers where they cannot differ:

* Every value is checked for its exact type (``type(x) is int``...) before any operation on it;
  an operation is only ever applied to exact ``int``, ``float``, ``bool``, ``None``, ``str``,
  ``list``, ``tuple``, ``dict`` and ``decimal.Decimal`` values, whose operations are the
  builtins' and the ``_decimal`` module's own C code, so no user code can run (no ``__eq__``,
  ``__hash__``, ``__len__``, ``__iter__``, property or descriptor). A subclass, a user object, a
  missing name, anything unexpected: the function returns :data:`FALLBACK` and the hook runs the
  closures, which answer or refuse with their own message. Errors are therefore never produced
  here: any exception in the body is a FALLBACK too.
* Decimals (money) as the closures take them: compared with an int, a float or a Decimal
  (``_compare``), added, subtracted, multiplied and divided with a Decimal or an int
  (``_arith``; with a float Python raises TypeError, so the closures refuse it with their
  message), ``abs`` and ``sum`` of them. The operations are the closures' own, in their order
  and under the thread's decimal context, which they read as the closures do: the same result,
  and where the context traps a signal (a NaN ordered, an sNaN compared, an overflow, an
  inexact result under a strict context) the operation raises, the function answers FALLBACK
  and the closures raise it again with their own message. The flags the operations set there
  are put back, as the closures put them back (:mod:`sensor.expressions.decimal_context`): a
  plain form, with no line of it, serves ints and floats, and leaves on a Decimal operand for
  the Decimal form, which takes the flags before the first operation that may signal (a NaN
  compared, a Decimal next to a float, arithmetic, ``abs``, ``sum``) and puts them back after.
* The redaction rules: a name or constant key that is a secret name (R1) is not fused at all
  (decided against the rules in force, and built again when they change, as the closures are);
  a string is used only if it is too short to be a secret or the redactor's table says it is
  clean at this rule version (R2), as the closures' own inline forms do; a list or tuple of two
  items is iterated only when no item is a string (R1's pairs); the literal constants are
  checked as the compiler checks them.
* The bounds: every loop is over at most a fixed number of items (:data:`MAX_LOOP`), a dict is
  read only when it has at most :data:`MAX_KEYS` keys (each checked to be a builtin scalar, so
  that a lookup compares only in C), and the most steps the closures could charge for the same
  work stays within one clock period of the step budget (:data:`MAX_COST`), so that they could
  neither run out of steps nor check their clock on the values the fused form answers for.

The generated text is built from fixed fragments only: parameter and temporary names of our
own, constants bound in the function's namespace (never written out with ``repr``), operator
symbols from a fixed table. No name, key or string of the expression appears in it.
"""

from __future__ import annotations

import ast
import builtins
import decimal
import itertools
import operator
from collections.abc import Callable
from typing import Any, Final

from sensor import redaction as _redaction
from sensor.errors import ExpressionError
from sensor.expressions import decimal_context as _decimal_context
from sensor.expressions.budget import (
    _CLOCK_EVERY,
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    new_state,
)
from sensor.expressions.functions import _TYPE_NAMES
from sensor.expressions.introspect import _MISSING, _SCALAR_IDS, _NoneType
from sensor.expressions.redact import CACHE_CHARS, MIN_SECRET_CHARS, guard
from sensor.expressions.values import _check_cmp

__all__ = [
    "DECIMAL_HEAD",
    "DECIMAL_LINE",
    "DECIMAL_TAIL",
    "FALLBACK",
    "MAX_COST",
    "MAX_KEYS",
    "MAX_LOOP",
    "fuse",
    "fuse_body",
]

#: What a fused function returns when it does not answer: the hook then runs the closures.
FALLBACK: Final[Any] = type("Fallback", (), {"__slots__": (), "__repr__": lambda s: "FALLBACK"})()
#: The most items a fused loop (``sum``, ``all``, ``any``) goes over.
MAX_LOOP: Final = 32
#: The most keys of a dict a fused subscript reads.
MAX_KEYS: Final = 32
#: The most steps the closures may charge for what a fused function answers: below one clock
#: period (``_CLOCK_EVERY``), the closures' budget checks can refuse nothing the fused form
#: answers (their first check starts the clock; the next comes after this many steps).
MAX_COST: Final = _CLOCK_EVERY // 2

_Decimal = decimal.Decimal
_NUM = frozenset({int, float})
# The numbers a comparison, an arithmetic operation, ``abs`` or ``sum`` takes: the closures'
# ``_compare`` compares exact Decimals with ints, floats and Decimals directly, and ``_arith``
# computes with a Decimal and a Decimal or an int (a Decimal with a float is refused there, and
# raises TypeError here: the closures then refuse it with their own message).
_NUMD = frozenset({int, float, _Decimal})
_STR = frozenset({str})
_STR_DEC = frozenset({str, _Decimal})
# What a name read (the load's rule R2) returns unchanged: these exact types, and a str that is
# short or known clean (checked where it is read).
_LOADABLE = frozenset[type]({int, float, bool, _NoneType, str, list, tuple, dict, _Decimal})
_ANY = _LOADABLE
_BOOL = frozenset({bool})
_ORDER = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_EQUAL = {ast.Eq: "==", ast.NotEq: "!="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
# Names the generated code uses for types, in the order a guard tests them.
_TYPE_ORDER = (int, float, _Decimal, str, bool, _NoneType, list, tuple, dict)
_TYPE_REF = {int: "int", float: "float", _Decimal: "DEC", str: "str", bool: "bool",
             _NoneType: "NoneT", list: "list", tuple: "tuple", dict: "dict"}  # fmt: skip


class _Unfusable(Exception):
    """The expression has a part the fused form does not handle: the closures run it."""


class _Gen:
    def __init__(
        self, red: _redaction.Redactor, table: Any, params: dict[str, str], form: bool = True
    ) -> None:
        self.red = red
        # The Decimal form (see snapshot), or the plain one, which leaves by DECIMAL_LINE on a
        # Decimal.
        self.decimal_form = form
        self.params = params
        self.ns: dict[str, Any] = {
            "FALLBACK": FALLBACK,
            "MISSING": _MISSING,
            "SCALAR": _SCALAR_IDS,
            "TABLE": table,
            "NoneT": _NoneType,
            "DEC": _Decimal,
            "GETCONTEXT": decimal.getcontext,
            "SEEN": _decimal_context.SEEN,
            "REMEMBER": _decimal_context.remember,
            "IS": operator.is_,
            # (endless and stateless: shared by every evaluation and thread)
            "STRS": itertools.repeat(str),
            "REPEAT": itertools.repeat(_MISSING),
            "__builtins__": {},
            **{n: getattr(builtins, n) for n in _SAFE_BUILTINS},
        }
        self.lines: list[str] = []
        self.level = 1
        # var -> (the exact types a check established, the block level it holds in)
        self.checked: dict[str, tuple[frozenset[type], int]] = {}
        # var -> the temporary holding ``type(var)``, set by its check (same block rule)
        self.typed: dict[str, tuple[str, int]] = {}
        # (result, value, the exact types it answered True for) of the last isinstance()
        self.narrow: tuple[str, str, frozenset[type]] | None = None
        self.n = 0
        self.cost = 0
        # Comprehension variables in scope: name -> (temporary, the exact types it may hold).
        self.scope: dict[str, tuple[str, frozenset[type]]] = {}
        # Whether a Decimal operand may be met (see snapshot): the Decimal form's lines then
        # need DECIMAL_HEAD before them and DECIMAL_TAIL after; the plain form's have
        # DECIMAL_LINE.
        self.decimal = False
        # Inside the operands of an arithmetic operation or ``abs``: a Decimal there takes the
        # snapshot at its check (it will be needed), not a NaN test first.
        self.arith = 0
        # Inside the operands of a comparison one of whose operands holds arithmetic: a compared
        # Decimal is tested for NaN where it is compared (see op_snapshot), not at its check.
        self.defer_nan = False
        # Variables last checked as possibly Decimal without the snapshot (see check).
        self.bare: set[str] = set()
        # var -> the block level where, from here on, ``var`` being a Decimal means that the
        # snapshot is taken (its check took it, or it is the result of an operation that took
        # it for its Decimal operand): an operation on it needs no test of its own.
        self.snapped: dict[str, int] = {}
        # The dict reads taken together (see plan_reads): parameter -> its constant str keys,
        # the ids of the Subscript nodes read so, and (parameter, key) -> the variable holding
        # the value once read.
        self.together: dict[str, tuple[str, ...]] = {}
        self.planned: set[int] = set()
        self.fetched: dict[tuple[str, str], str] = {}

    # -- emission -----------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    def tmp(self, prefix: str = "t") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value: object) -> str:
        name = self.tmp("K")
        self.ns[name] = value
        return name

    def snapshot(self, indent: str) -> None:
        """The lines that take the host's decimal flags, once per evaluation, on a value found
        to be a Decimal, before any operation on it (see sensor.expressions.decimal_context):
        ``dz`` the flags (None: not taken), ``dc`` their context, ``dk`` the state they hold.
        In the plain form: :data:`DECIMAL_LINE` instead, which leaves for the Decimal form (an
        int or a float then runs no line of the Decimal form's, not even ``dz = None``)."""
        self.decimal = True
        if not self.decimal_form:
            self.emit(indent + DECIMAL_LINE)
            return
        for line in (
            "if dz is None:",
            "    dk = SEEN[0]",
            "    dc = GETCONTEXT()",
            "    df = dc.flags",
            "    if df != dk[0]:",
            "        dk = REMEMBER(df)",
            "    dz = df",
        ):
            self.emit(indent + line)

    def or_decimal(
        self, var: str, tt: str, others: str, head: str = "if", snap: bool = True
    ) -> None:
        """``{head} not ({others}):`` FALLBACK unless type ``tt`` of ``var`` is DEC, tested last
        (an int or a float is tested as before the snapshot existed). ``snap`` (unless the
        value is only tested, by ``is`` or ``isinstance``): the plain form leaves for the
        Decimal form; the Decimal form takes the snapshot for a NaN, the only Decimal whose
        comparison with an int or a Decimal signals (an exact comparison otherwise, whatever
        the precision or exponent limits), tested here unless the comparison's operands hold
        arithmetic (``defer_nan``: that arithmetic takes the snapshot first on a Decimal, and
        the comparison tests for a NaN only while it is not taken); an arithmetic operation,
        ``abs``, ``sum`` and a comparison with a float take it where they run (see
        op_snapshot)."""
        indent = "    "
        if others:
            self.emit(f"{head} not ({others}):")
        elif head == "elif":
            self.emit("else:")
        else:
            indent = ""
        self.emit(f"{indent}if {tt} is not DEC:")
        self.emit(f"{indent}    return FALLBACK")
        if snap and self.decimal_form and not self.arith and not self.defer_nan:
            self.emit(f"{indent}if {var}.is_nan():")
            self.snapshot(indent + "    ")
        elif snap and not (self.decimal_form and not self.arith):
            self.snapshot(indent)
        elif indent:
            self.emit(f"{indent}pass")

    def op_snapshot(
        self, operands: list[tuple[str, frozenset[type]]], floats: bool, nan: bool = False
    ) -> None:
        """In the Decimal form, before an operation that may signal on a Decimal operand: the
        snapshot where one operand is a Decimal (``floats``: a comparison, whose operands are
        compared in adjacent pairs: where one of a pair is a Decimal and the other a float;
        ``nan``: or an operand is a NaN Decimal, tested here instead of at the operands' checks
        (see or_decimal), and only while the snapshot is not taken, so that a comparison after
        arithmetic pays nothing for it)."""
        if not self.decimal_form:
            return
        if floats:
            pairs = list(itertools.pairwise(operands))
            pairs += [(b, a) for a, b in pairs]
            tests = [
                f"({self.type_of(a)} is DEC and {self.type_of(b)} is float)"
                for (a, ta), (b, tb) in pairs
                if _Decimal in ta and float in tb
            ]
            if nan:
                tests += [
                    f"({self.type_of(v)} is DEC and {v}.is_nan())"
                    for v, t in operands
                    if _Decimal in t
                ]
            if not tests:
                return
            test = " or ".join(tests)
            self.emit(f"if dz is None and ({test}):" if nan else f"if {test}:")
            self.snapshot("    ")
            return
        tests = [
            f"{self.type_of(v)} is DEC"
            for v, t in operands
            if _Decimal in t and v not in self.snapped
        ]
        if not tests:
            return  # (every Decimal operand's check or operation took it)
        self.emit(f"if {' or '.join(tests)}:")
        self.snapshot("    ")

    def check(self, var: str, types: frozenset[type], known: frozenset[type] | None = None) -> None:
        """Return FALLBACK unless ``var`` is of one of ``types`` exactly; a str must be too short
        to be a secret or known clean (R2). ``known``: the exact types ``var`` is already known
        to have (None: anything, a value from the host), or what an earlier check of it in this
        block or an enclosing one established."""
        seen = self.checked.get(var)
        if seen is not None:
            known = seen[0] if known is None else known & seen[0]
        # Operands of a comparison or arithmetic (numbers, and strings for ==): a Decimal
        # takes the host's decimal flags first. A value only tested (``is None``,
        # ``isinstance``, wanted as any loadable type) does not, and is noted as such: a later
        # check of it for an operation is made again (narrowed by isinstance, it could be
        # skipped), so that the snapshot precedes every Decimal operation.
        snap = types <= _NUMD | _STR
        if known is not None:
            if known <= types and not (snap and _Decimal in known and var in self.bare):
                return  # already checked
            types = types & known
        types = types & _LOADABLE
        if not types:
            raise _Unfusable("no type fits")
        tt = self.tmp("y")
        self.emit(f"{tt} = type({var})")
        # A Decimal is tested last, and takes the host's decimal flags (see snapshot).
        dec = _Decimal in types
        tests = [f"{tt} is {_TYPE_REF[t]}" for t in _TYPE_ORDER if t in types and t not in _STR_DEC]
        if str in types and (known is None or str not in known):
            # A str first (R2: short or known clean), one test; the other types after it.
            self.emit(f"if {tt} is str:")
            self.emit(
                f"    if not (len({var}) < {MIN_SECRET_CHARS} or (len({var}) <= "
                f"{CACHE_CHARS} and TABLE.get({var}, 0) is None)):"
            )
            self.emit("        return FALLBACK")
            if dec:
                self.or_decimal(var, tt, " or ".join(tests), "elif", snap)
            elif tests:
                self.emit(f"elif not ({' or '.join(tests)}):")
                self.emit("    return FALLBACK")
            else:
                self.emit("else:")
                self.emit("    return FALLBACK")
        else:  # (a str known to have passed R2 already: its type alone)
            if str in types:
                tests.insert(0, f"{tt} is str")
            if dec:
                self.or_decimal(var, tt, " or ".join(tests), "if", snap)
            else:
                self.emit(f"if not ({' or '.join(tests)}):")
                self.emit("    return FALLBACK")
        self.checked[var] = (types, self.level)
        self.typed[var] = (tt, self.level)
        if dec and not snap:
            self.bare.add(var)
        else:
            self.bare.discard(var)
        if dec and snap and self.decimal_form and self.arith:
            self.snapped[var] = self.level  # (see or_decimal: the snapshot at the check)

    def type_of(self, var: str) -> str:
        """An expression for ``type(var)``: the temporary its check assigned, where in scope."""
        seen = self.typed.get(var)
        return seen[0] if seen is not None else f"type({var})"

    def big_int_guard(self, var: str, types: frozenset[type]) -> None:
        """FALLBACK for an int of 1024 bits or more (the closures check those). Its type is
        the check's temporary where there is one (no second ``type()``); ``bit_length()`` is
        kept: a comparison with constant bounds (``-2**1023 < v < 2**1023``) measured no
        cheaper (generic big-int compares, 1.01x-1.02x of the instructions)."""
        if int not in types:
            return
        test = f"{var}.bit_length() >= 1024"
        if types != frozenset({int}):
            test = f"{self.type_of(var)} is int and {test}"
        self.emit(f"if {test}:")
        self.emit("    return FALLBACK")

    def take_narrow(self) -> tuple[str, str, frozenset[type]] | None:
        narrow, self.narrow = self.narrow, None
        return narrow

    def open_block(self) -> None:
        self.level += 1

    def close_block(self) -> None:
        # What a check inside the block established holds only inside it.
        self.level -= 1
        self.checked = {v: e for v, e in self.checked.items() if e[1] <= self.level}
        self.snapped = {v: e for v, e in self.snapped.items() if e <= self.level}
        self.typed = {v: e for v, e in self.typed.items() if e[1] <= self.level}

    def plan_reads(self, root: ast.AST) -> None:
        """Find the dict reads to take together: a parameter read with two or more constant
        str keys by subscripts that run on every evaluation (not in the later operands of an
        ``and``/``or``, the later links of a comparison chain, a generator, or anything this
        walk does not know). Their keys are checked once and their values read in one C-level
        step at the first of them (see x_Subscript); every other read keeps its own check."""
        reads: dict[str, list[tuple[ast.Subscript, str]]] = {}

        def walk(node: ast.AST, sure: bool) -> None:
            if isinstance(node, ast.Subscript):
                key = node.slice
                if (
                    sure
                    and isinstance(node.value, ast.Name)
                    and node.value.id in self.params
                    and isinstance(key, ast.Constant)
                    and type(key.value) is str
                ):
                    reads.setdefault(self.params[node.value.id], []).append((node, key.value))
                walk(node.value, sure)
                return
            if isinstance(node, ast.BoolOp):
                for i, value in enumerate(node.values):
                    walk(value, sure and i == 0)
                return
            if isinstance(node, ast.Compare):
                for i, operand in enumerate([node.left, *node.comparators]):
                    walk(operand, sure and i < 2)
                return
            sure = sure and isinstance(node, _SURE_NODES)
            for child in ast.iter_child_nodes(node):
                walk(child, sure)

        walk(root, True)
        for param, found in reads.items():
            keys = tuple(dict.fromkeys(key for _, key in found))
            if len(keys) >= 2:
                self.together[param] = keys
                self.planned.update(id(node) for node, _ in found)

    def read_together(self, base: str, key: str) -> str:
        """The variable holding ``base[key]`` (MISSING when not there), read with the other
        keys of ``base`` planned together (see plan_reads), on the first of them.

        The keys are checked once, every one an exact ``str`` (a dict with a key of another
        type falls back), so that the lookups compare only in C: a host key of its own class,
        whose ``__eq__`` a colliding hash would run, is never compared. One check is enough for
        all the reads because nothing between its walk over the keys and the last lookup lets
        another thread or any Python code run: the walk is ``False in map(IS, map(type, v),
        STRS)`` (CONTAINS_OP: the dict iterated in C, ``type`` and ``operator.is_`` called
        from C, no audit event, no allocation), a forward jump, then UNPACK_SEQUENCE of
        ``map(v.get, KEYS, REPEAT)``, made before the walk (its items are computed only
        there, by the bound ``dict.get`` called from C). None of these bytecodes checks the
        eval breaker (the CALLs that make the maps do, after returning: before the walk), and
        no collection runs (3.12+: only at the eval breaker; 3.11: on allocating a collectable
        object, and the window allocates nothing). A Python loop over the keys would not do:
        its JUMP_BACKWARD is a switch point, and a key deleted and another inserted there (a
        resize compacts the entries) ends the iteration without an error."""
        got = self.fetched.get((base, key))
        if got is not None:
            return got
        keys = self.together[base]
        outs = [self.tmp("x") for _ in keys]
        m = self.tmp("m")
        self.emit(f"{m} = map({base}.get, {self.const(keys)}, REPEAT)")
        # One line: a tracer's line event (Python code, a switch point) cannot come between
        # the check and the lookups. Refused: values of no type a check lets through.
        refused = self.const((FALLBACK,) * len(keys))
        self.emit(
            f"{', '.join(outs)}, = {m} if len({base}) <= {MAX_KEYS} and False not in "
            f"map(IS, map(type, {base}), STRS) else {refused}"
        )
        for k, out in zip(keys, outs, strict=True):
            self.fetched[(base, k)] = out
        return self.fetched[(base, key)]

    # -- nodes: each returns (a variable or constant name, the exact types it may hold) ----

    def ex(self, node: ast.AST, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        method = getattr(self, "x_" + type(node).__name__, None)
        if method is None:
            raise _Unfusable(type(node).__name__)
        out: tuple[str, frozenset[type]] = method(node, want)
        if not out[1] <= want:
            raise _Unfusable("type")
        return out

    def x_Name(self, node: ast.Name, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        name = node.id
        if name in self.scope:
            var, types = self.scope[name]
            self.check(var, want, types)
            return var, types & want
        param = self.params.get(name)
        if param is None or name.startswith("_") or self.red.is_secret_name(name):
            raise _Unfusable("name")  # not at hand, or R1 applies to it
        # The parameter itself: a function's own argument, never rebound.
        self.check(param, want)
        return param, want & _LOADABLE

    def _constant(self, node: ast.AST) -> object:
        if isinstance(node, ast.Constant):
            value = node.value
        elif (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in _NUM
        ):
            # What the closures compute for a signed number (c_UnaryOp), at build time.
            number: int | float = node.operand.value  # type: ignore[assignment]
            value = -number if isinstance(node.op, ast.USub) else +number
        else:
            return _MISSING
        if type(value) not in _TYPE_REF or (type(value) is int and value.bit_length() > 1024):
            raise _Unfusable("constant")
        # R2 as c_Constant applies it: a secret written in the expression is a marker there.
        if guard(value, new_state(DEFAULT_MAX_STEPS, DEFAULT_MAX_SECONDS, self.red)) is not value:
            raise _Unfusable("constant")
        return value

    def x_Constant(self, node: ast.Constant, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        value = self._constant(node)
        return self.const(value), frozenset({type(value)})

    def x_UnaryOp(self, node: ast.UnaryOp, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        value = self._constant(node)
        if value is not _MISSING:
            return self.const(value), frozenset({type(value)})
        if isinstance(node.op, ast.Not):
            var, _ = self.ex(node.operand, _BOOL)
            out = self.tmp()
            self.emit(f"{out} = not {var}")
            return out, _BOOL
        raise _Unfusable("unary")

    def x_BoolOp(self, node: ast.BoolOp, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        out = self.tmp("r")
        is_and = isinstance(node.op, ast.And)
        self.narrow = None
        first, _ = self.ex(node.values[0], _BOOL)
        self.emit(f"{out} = {first}")
        test = f"if {out}:" if is_and else f"if not {out}:"
        opened = 0
        for value in node.values[1:]:
            narrow = self.take_narrow()
            self.emit(test)
            self.open_block()
            opened += 1
            if is_and and narrow is not None and narrow[0] == first:
                # ``isinstance(x, C) and ...``: x is of one of the classes it answered True for
                # (its exact type decided that answer), in the rest of the ``and``.
                self.checked[narrow[1]] = (narrow[2], self.level)
            var, _ = self.ex(value, _BOOL)
            first = var
            self.emit(f"{out} = {var}")
        for _ in range(opened):
            self.close_block()
        return out, _BOOL

    def x_Compare(self, node: ast.Compare, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        if len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn):
            return self._in_literal(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], ast.Is | ast.IsNot):
            return self._is_none(node)
        symbols = []
        for op in node.ops:
            sym = _ORDER.get(type(op)) or _EQUAL.get(type(op))
            if sym is None:
                raise _Unfusable("comparison")
            symbols.append(sym)
        operands = [node.left, *node.comparators]
        # (In)equality: strings and numbers, compared natively as the closures' _compare
        # compares two builtin scalars (a str, loaded under R2, with anything: its own C
        # code); a literal string on one side takes strings only, as the closures' cmp_str.
        # An order: numbers only.
        equality = len(symbols) == 1 and symbols[0] in ("==", "!=")
        texts = equality and any(
            isinstance(o, ast.Constant) and type(o.value) is str for o in operands
        )
        kind = _STR if texts else (_STR | _NUMD) if equality else _NUMD
        # Arithmetic among the operands (the quote identity) takes the snapshot on a Decimal
        # before the comparison: a compared Decimal's NaN test is then deferred to the
        # comparison, which skips it once the snapshot is taken. Without arithmetic it is made
        # at the operand's check (a plain comparison pays no second test of the types there).
        deferred = any(map(_has_arith, operands))
        outer, self.defer_nan = self.defer_nan, deferred
        try:
            typed = [self.ex(o, kind) for o in operands]
        finally:
            self.defer_nan = outer
        names = [name for name, _ in typed]
        # A Decimal with a float: FloatOperation; a NaN, where the checks did not test it.
        self.op_snapshot(typed, floats=True, nan=deferred)
        out = self.tmp("r")
        text = names[0]
        for sym, name in zip(symbols, names[1:], strict=True):
            text += f" {sym} {name}"
        self.emit(f"{out} = {text}")
        return out, _BOOL

    def _is_none(self, node: ast.Compare) -> tuple[str, frozenset[type]]:
        """``x is None``, ``x is not None`` (either side): an identity test, no user code; the
        other operand is loaded as any name is (a value of another type: FALLBACK)."""
        left, right = node.left, node.comparators[0]
        if isinstance(right, ast.Constant) and right.value is None:
            other = left
        elif isinstance(left, ast.Constant) and left.value is None:
            other = right
        else:
            raise _Unfusable("is")
        var, _ = self.ex(other, _LOADABLE)
        out = self.tmp("r")
        op = "is" if isinstance(node.ops[0], ast.Is) else "is not"
        self.emit(f"{out} = {var} {op} None")
        return out, _BOOL

    def _in_literal(self, node: ast.Compare) -> tuple[str, frozenset[type]]:
        box = node.comparators[0]
        if not isinstance(box, ast.Tuple | ast.List | ast.Set):
            raise _Unfusable("in")
        items = []
        for e in box.elts:
            if not isinstance(e, ast.Constant):
                raise _Unfusable("in")
            value = self._constant(e)
            if type(value) in (str,) and len(value) > CACHE_CHARS:  # type: ignore[arg-type]
                raise _Unfusable("in")
            items.append(value)
        built: Any = set(items) if isinstance(box, ast.Set) else items
        try:  # the closures' container check (R3), run once here as _in_literal does
            _check_cmp(built, new_state(DEFAULT_MAX_STEPS, DEFAULT_MAX_SECONDS, self.red))
        except ExpressionError:
            raise _Unfusable("in") from None
        self.cost += len(items)  # the container check's steps
        box_name = self.const(frozenset(built) if isinstance(box, ast.Set) else tuple(built))
        var, _ = self.ex(node.left, frozenset[type]({int, float, bool, _NoneType, str}))
        out = self.tmp("r")
        op = "in" if isinstance(node.ops[0], ast.In) else "not in"
        self.emit(f"{out} = {var} {op} {box_name}")
        return out, _BOOL

    def x_BinOp(self, node: ast.BinOp, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        sym = _ARITH.get(type(node.op))
        if sym is None:
            raise _Unfusable("operator")
        self.arith += 1
        try:
            a, ta = self.ex(node.left, _NUMD)
            b, tb = self.ex(node.right, _NUMD)
        finally:
            self.arith -= 1
        # The closures compute natively only below these sizes (larger ints are checked).
        for var, types in ((a, ta), (b, tb)):
            self.big_int_guard(var, types)
        if sym in ("/", "//", "%"):
            self.emit(f"if not {b}:")  # the closures' ZeroDivisionError, with their message
            self.emit("    return FALLBACK")
        self.op_snapshot([(a, ta), (b, tb)], floats=False)
        out = self.tmp()
        # A Decimal with a float raises TypeError (the closures refuse it: FALLBACK); a Decimal
        # operation that signals a trapped condition of the thread's context raises as the
        # closures' does (FALLBACK: they raise it again, with the same context).
        self.emit(f"{out} = {a} {sym} {b}")
        if _Decimal in ta | tb:
            # A Decimal result has a Decimal operand, for which the snapshot was taken.
            self.snapped[out] = self.level
        return out, (_NUMD if _Decimal in ta | tb else _NUM)

    def x_Subscript(
        self, node: ast.Subscript, want: frozenset[type]
    ) -> tuple[str, frozenset[type]]:
        key = self._constant(node.slice)
        if type(key) is str:
            if self.red.is_secret_name(key):
                raise _Unfusable("secret key")  # R1: the closures hide its value
            base, _ = self.ex(node.value, frozenset({dict}))
            if id(node) in self.planned and self.level == 1:
                # Read with the parameter's other planned keys, at the first of them.
                self.cost += 1 + (MAX_KEYS >> 2)  # the closures' steps, as below
                out = self.read_together(base, key)
                self.check(out, want)
                return out, want & _LOADABLE
            # _check_keys: every key a builtin scalar, so that the lookup compares only in C.
            # A few keys (the common dict) one by one, most of them str; more in C at once.
            k = self.tmp("k")
            self.emit(f"if len({base}) <= 8:")
            self.emit(f"    for {k} in {base}:")
            self.emit(f"        if type({k}) is not str and id(type({k})) not in SCALAR:")
            self.emit("            return FALLBACK")
            self.emit(f"elif len({base}) > {MAX_KEYS}:")
            self.emit("    return FALLBACK")
            self.emit(f"elif not {{*map(id, map(type, {base}))}} <= SCALAR:")
            self.emit("    return FALLBACK")
            self.cost += 1 + (MAX_KEYS >> 2)
            out = self.tmp("x")
            self.emit(f"{out} = {base}.get({self.const(key)}, MISSING)")
            # (a key not there: MISSING, a plain object, which the check below refuses)
            self.check(out, want)
            return out, want & _LOADABLE
        if type(key) is int:
            base, _ = self.ex(node.value, frozenset[type]({list, tuple}))
            k = self.const(key)
            # A pair may hide its second item (R1): the closures read it.
            self.emit(f"if len({base}) == 2 or not -len({base}) <= {k} < len({base}):")
            self.emit("    return FALLBACK")
            out = self.tmp("x")
            self.emit(f"{out} = {base}[{k}]")
            self.check(out, want)
            return out, want & _LOADABLE
        raise _Unfusable("subscript")

    def x_Call(self, node: ast.Call, want: frozenset[type]) -> tuple[str, frozenset[type]]:
        func = node.func
        if not isinstance(func, ast.Name) or node.keywords or func.id in self.scope:
            raise _Unfusable("call")
        name = func.id
        args = node.args
        if name == "len" and len(args) == 1:
            var, _ = self.ex(args[0], frozenset[type]({list, tuple, dict, str}))
            out = self.tmp()
            self.emit(f"{out} = len({var})")
            return out, frozenset({int})
        if name == "abs" and len(args) == 1:
            self.arith += 1
            try:
                var, types = self.ex(args[0], _NUMD)
            finally:
                self.arith -= 1
            self.big_int_guard(var, types)
            self.op_snapshot([(var, types)], floats=False)
            out = self.tmp()
            self.emit(f"{out} = abs({var})")  # a Decimal's: rounded by the thread's context
            if _Decimal in types:
                self.snapped[out] = self.level
            return out, types & _NUMD
        if name == "isinstance" and len(args) == 2:
            spec = self._static_types(args[1])
            var, types = self.ex(args[0], _LOADABLE)
            # The answer for each exact type the value may have, decided here: for these
            # builtin classes, what _isinstance's walk of the value's MRO answers.
            true = frozenset(t for t in types if any(c in t.__mro__ for c in spec))
            out = self.tmp("r")
            self.emit(f"{out} = {self.type_of(var)} in {self.const(true)}")
            if true:
                self.narrow = (out, var, true)
            return out, _BOOL
        if name == "sum" and len(args) == 1:
            var, _ = self.ex(args[0], frozenset[type]({list, tuple}))
            item = self.tmp("i")
            ti = self.tmp("y")
            self.emit(f"if len({var}) > {MAX_LOOP}:")
            self.emit("    return FALLBACK")
            self.emit(f"for {item} in {var}:")
            self.emit(f"    {ti} = type({item})")
            self.emit(f"    if {ti} is not int and {ti} is not float:")
            self.emit(f"        if {ti} is not DEC:")
            self.emit("            return FALLBACK")
            self.snapshot("        ")
            self.cost += MAX_LOOP
            out = self.tmp()
            # (Decimals and floats together: TypeError, FALLBACK; the closures fail as sum does.)
            self.emit(f"{out} = sum({var})")
            return out, _NUMD
        if name in ("all", "any") and len(args) == 1 and isinstance(args[0], ast.GeneratorExp):
            return self._all_any(name == "all", args[0])
        raise _Unfusable("call")

    def _static_types(self, node: ast.AST) -> tuple[type, ...]:
        if isinstance(node, ast.Name) and node.id in _TYPE_NAMES and node.id not in self.scope:
            cls = _TYPE_NAMES[node.id]
            if type(cls) is not type:
                raise _Unfusable("isinstance")  # not a plain builtin class
            return (cls,)
        if isinstance(node, ast.Constant) and node.value is None:
            return (_NoneType,)
        if isinstance(node, ast.Tuple):
            return tuple(c for e in node.elts for c in self._static_types(e))
        raise _Unfusable("isinstance")

    def _all_any(self, is_all: bool, gen: ast.GeneratorExp) -> tuple[str, frozenset[type]]:
        if len(gen.generators) != 1:
            raise _Unfusable("comprehension")
        comp = gen.generators[0]
        target = comp.target
        if comp.ifs or comp.is_async or not isinstance(target, ast.Name):
            raise _Unfusable("comprehension")
        if target.id.startswith("_") or target.id in self.scope:
            raise _Unfusable("comprehension")
        seq, _ = self.ex(comp.iter, frozenset[type]({list, tuple}))
        out = self.tmp("r")
        item = self.tmp("c")
        ti = self.tmp("y")
        # Items: exact numbers (Decimals too) and None, and strings (short or known clean) unless
        # the list is a pair, whose second item R1 may hide.
        self.emit(f"if len({seq}) > {MAX_LOOP}:")
        self.emit("    return FALLBACK")
        self.emit(f"{out} = {'True' if is_all else 'False'}")
        pair = self.tmp("p")
        self.emit(f"{pair} = len({seq}) == 2")
        self.emit(f"for {item} in {seq}:")
        self.open_block()
        upfront = len(self.lines)
        self.emit(f"{ti} = type({item})")
        self.or_decimal(
            item,
            ti,
            f"{ti} is int or {ti} is float or {ti} is NoneT or ({ti} is str and not {pair}"
            f" and (len({item}) < {MIN_SECRET_CHARS} or (len({item}) <= {CACHE_CHARS} and "
            f"TABLE.get({item}, 0) is None)))",
        )
        body_at = len(self.lines)
        self.scope[target.id] = (item, frozenset({int, float, _Decimal, _NoneType, str}))
        before = self.cost
        try:
            var, _ = self.ex(gen.elt, _BOOL)
            body = self.checked.get(item)
        finally:
            del self.scope[target.id]
        if (
            body is not None
            and body[1] == self.level
            and str not in body[0]
            and self.lines[body_at].endswith(f" = type({item})")
        ):
            # The body's first line checks every item, at its own level, as numbers or None
            # (no string, so R2 and the pairs do not arise), and takes the snapshot for a
            # Decimal as this check does: the checks above are not needed.
            del self.lines[upfront:body_at]
            del self.lines[upfront - 2]  # the pair test
        inner = self.cost - before
        self.cost = before + MAX_LOOP * (1 + inner)  # _iterate's step per item, and the body's
        if is_all:
            self.emit(f"if not {var}:")
            self.emit(f"    {out} = False")
        else:
            self.emit(f"if {var}:")
            self.emit(f"    {out} = True")
        self.emit("    break")
        self.close_block()
        return out, _BOOL


_ARITH_CALLS = frozenset({"abs", "sum"})


def _has_arith(node: ast.AST) -> bool:
    """Whether ``node`` holds an operation that takes the host's decimal flags on any Decimal
    operand (see _Gen.op_snapshot): an arithmetic operator, ``abs`` or ``sum``."""
    return any(
        isinstance(n, ast.BinOp)
        or (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _ARITH_CALLS)
        for n in ast.walk(node)
    )


# The nodes whose every operand is evaluated whenever they are (see _Gen.plan_reads): an
# operand of any other node (a generator, a conditional expression...) may not be.
_SURE_NODES = (ast.Expression, ast.UnaryOp, ast.BinOp, ast.Call, ast.Name, ast.Constant)

# The builtins the generated code calls, on exact builtin values only.
_SAFE_BUILTINS: tuple[str, ...] = ("abs", "bool", "dict", "float", "id", "int", "len", "list")
_SAFE_BUILTINS += ("map", "str", "sum", "tuple", "type")


#: The line by which the plain form of a body (``fuse_body(..., decimal=False)``) leaves on a
#: value found to be a Decimal, before any operation on it: :func:`fuse` replaces it with a
#: call of the Decimal form, an inliner with its own way there (the body is pure: the Decimal
#: form evaluates it again from the start).
DECIMAL_LINE: Final = "return DECIMAL"
#: Where the body takes the host's decimal flags (``fuse_body``'s ``decimal``): the line to
#: run before it, and the lines to run after it, however it ended (an answer, FALLBACK, an
#: exception), which put the flags back if an operation of the body set one.
DECIMAL_HEAD: Final = "dz = None"
DECIMAL_TAIL: Final = ("if dz is not None and dz != dk[0]:", "    RESTORE(dc, dk)")


def fuse_body(
    tree: ast.Expression,
    red: _redaction.Redactor,
    table: Any,
    value_name: str | None,
    local_names: tuple[str, ...],
    max_steps: int,
    decimal: bool = True,
) -> tuple[list[str], dict[str, Any], str, bool] | None:
    """The fused form's body, to be inlined: (its lines, at one indentation level of four
    spaces; the namespace they read; the variable holding the answer; whether they take the
    host's decimal flags), or None when the expression has a part it does not handle. The lines
    read the probe's value as ``v`` and the passed locals as ``a0``, ``a1``; they leave by
    ``return FALLBACK`` where they do not answer (an inliner replaces that line), and may raise
    (an inliner treats that as FALLBACK). Their own names are letters followed by digits, and
    ``dz``, ``dc``, ``dk``, ``df`` (the decimal flags, see :func:`_Gen.snapshot`: where they
    are taken, :data:`DECIMAL_HEAD` must run before the lines and :data:`DECIMAL_TAIL` after
    them, on every way out), and the namespace's keys are those and the uppercase names and
    builtins of :func:`fuse`: a name starting with ``_`` is free for the inliner.
    ``decimal`` False: the plain form, where a Decimal operand leaves by :data:`DECIMAL_LINE`
    (and the fourth item says whether there is such a line), with no line of the flags'."""
    params: dict[str, str] = {}
    if value_name is not None:
        params[value_name] = "v"
    for i, name in enumerate(local_names[:2]):
        params[name] = f"a{i}"
    gen = _Gen(red, table, params, decimal)
    gen.plan_reads(tree.body)
    try:
        var, _ = gen.ex(tree.body, _ANY)
    except (_Unfusable, RecursionError):
        return None
    if gen.cost > min(MAX_COST, max_steps):
        return None
    if gen.decimal and decimal:
        gen.ns["RESTORE"] = _decimal_context.restore
    return gen.lines, gen.ns, var, gen.decimal


def fuse(
    tree: ast.Expression,
    red: _redaction.Redactor,
    table: Any,
    value_name: str | None,
    local_names: tuple[str, ...],
    max_steps: int,
) -> Callable[[object, object, object], Any] | None:
    """The fused function ``fused(value, p0, p1)`` of an expression's syntax tree, compiled
    against the redactor ``red`` and its verdict ``table``, or None when the expression has a
    part it does not handle (the closures then run every evaluation).

    ``value`` is the probe's value (``value_name``), ``p0`` and ``p1`` the locals
    ``local_names`` in order; a value not given (``NOTHING``) makes it return FALLBACK.
    """
    body = fuse_body(tree, red, table, value_name, local_names, max_steps, decimal=False)
    if body is None:
        return None
    lines, ns, var, dec = body
    if dec:
        # A Decimal operand: the Decimal form, which puts the host's flags back (a tail call:
        # the plain form, all an int or a float runs, has no line of its).
        full = fuse_body(tree, red, table, value_name, local_names, max_steps)
        if full is None:
            return None
        ns["DFUSED"] = _compile(*full)
        lines = [line.replace(DECIMAL_LINE, "return DFUSED(v, a0, a1)") for line in lines]
    return _compile(lines, ns, var, False)


def _compile(
    lines: list[str], ns: dict[str, Any], var: str, dec: bool
) -> Callable[[object, object, object], Any]:
    # Any exception (an int division too large for a float, a MemoryError): the closures run
    # and report it with their own message. The host's decimal flags put back on every way out.
    text = (
        "def fused(v, a0, a1):\n"
        + (f"  {DECIMAL_HEAD}\n" if dec else "")
        + "  try:\n"
        + "\n".join("  " + line for line in lines)
        + f"\n      return {var}"
        + "\n  except Exception:\n    return FALLBACK\n"
        + ("  finally:\n" + "".join(f"    {line}\n" for line in DECIMAL_TAIL) if dec else "")
    )
    code = builtins.compile(text, "<fused expectation>", "exec")
    # The handler's name (the namespace has no builtins): without it, an exception in the
    # body (a Decimal signal the thread's context traps) would leave as a NameError.
    ns["Exception"] = Exception
    exec(code, ns)  # our own fixed fragments only (see the module docstring)
    fn: Callable[[object, object, object], Any] = ns["fused"]
    fn.source = text  # type: ignore[attr-defined]
    return fn
