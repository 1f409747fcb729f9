"""The sandboxed expression language of probes: conditions, captures, expectations, log templates.

An expression is a subset of Python (see docs/reference/expressions.md). :func:`compile` parses
it with :mod:`ast`, refuses every construct outside a whitelist (naming the construct, its
column and why), and turns the tree into a tree of Python closures once. Evaluation runs those
closures; user text is never passed to :func:`eval`.

Read-only and inert by construction:

* no assignment, import, lambda, ``await``/``yield``, starred arguments, and no name or attribute
  that starts with ``_``;
* attribute reads come from the instance ``__dict__`` (through the real ``__dict__`` descriptor
  of the type, never the object's ``__getattribute__``), genuine ``__slots__``, or plain class
  data; properties, other descriptors and ``__getattr__`` are never run;
* comparisons, ``in``, hashing, arithmetic, truthiness, ``len`` and iteration apply to builtin
  values only, decided from the type's MRO (read through :class:`type`'s own descriptors, so a
  metaclass cannot intercept), so no user ``__eq__``/``__hash__``/``__bool__``/``__len__``/
  ``__iter__``/``__format__``/``__repr__`` runs; a user object is formatted as ``<TypeName>``;
* calls go to an allow-list of pure builtins implemented here, plus a few methods of ``str``,
  ``dict``, ``list`` and ``tuple``;
* bounded: a step budget and a wall-time budget checked while it runs, and size checks that
  refuse large intermediates (``'x' * 10**9``, ``2 ** 10**8``, ``range(10**12)``) before they
  are built;
* nothing secret comes out: a value the :mod:`sensor.redaction` rules call secret, by its name
  or by its content, is an opaque :class:`Redacted` marker inside the expression, and error
  texts never quote a value. Every rule is in :mod:`sensor.expressions.redact`.

The package, by concern: ``budget`` (limits and the evaluation state), ``introspect`` (questions
about types), ``redact`` (the redaction rules), ``values`` (safe operations), ``attributes``,
``formatting``, ``functions`` (builtins), ``methods``, ``compiler`` and ``templates``.

It imports the standard library only: it runs inside production services.
"""

from __future__ import annotations

from sensor.expressions.budget import DEFAULT_MAX_SECONDS, DEFAULT_MAX_STEPS, MAX_SOURCE
from sensor.expressions.compiler import Expression, compile
from sensor.expressions.formatting import safe_format
from sensor.expressions.functions import ALLOWED_FUNCTIONS
from sensor.expressions.redact import Redacted
from sensor.expressions.templates import Template, compile_template

__all__ = [
    "ALLOWED_FUNCTIONS",
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_MAX_STEPS",
    "MAX_SOURCE",
    "Expression",
    "Redacted",
    "Template",
    "compile",
    "compile_template",
    "safe_format",
]
