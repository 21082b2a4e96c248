"""The root of every error a user can cause: :class:`TickerError`.

A bad scenario file, a batch that breaks the stream's rules, a damaged event log, an unreachable
broker, a malformed URL, a run directory that is not one: each is a subclass of
:class:`TickerError` whose ``str()`` is one line saying what, where, and what was expected. The
CLI catches ``TickerError`` once and prints :meth:`TickerError.lines`; anything else that escapes
is a bug in ticker, not in what the user asked for.

A library user catches the same root::

    try:
        summary = ticker.replay("my-festival.toml")
    except ticker.TickerError as exc:
        print(exc)

Subclasses keep the builtin base they had before the root existed (``ValueError`` for bad input,
``RuntimeError`` for a locked log) so code that caught those still works. New error classes
(other modules, other issues) subclass ``TickerError`` (and, if it fits, a builtin) the same way.
"""

from __future__ import annotations


class TickerError(Exception):
    """Something a user can cause, told in one line (a few for a scenario with several problems).

    >>> str(TickerError("runs/x: not a run directory (no run.json)"))
    'runs/x: not a run directory (no run.json)'
    >>> TickerError("one line").lines()
    ['one line']
    """

    def lines(self) -> list[str]:
        """The message as lines for the user: one, unless the error collects several problems."""
        return str(self).splitlines() or [type(self).__name__]


class ProblemsError(TickerError):
    """An input file with several problems, ``problems`` holding one line for each.

    >>> ProblemsError(["a.toml: windows: expected a list", "a.toml: seed: expected an integer"]).lines()
    ['a.toml: windows: expected a list', 'a.toml: seed: expected an integer']
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return list(self.problems)
