"""Boolean query strings, as analysts write them in media-monitoring tools:

    ("KN-23" OR Hwasong-11) AND (Russia OR Ukraine) AND NOT "South Korea"

Grammar (a query compiles to the same tree as the equivalent YAML condition):

- operands: a bare word (a run of characters other than space, `(`, `)` and `"`, so `KN-23` and
  `Hwasong-11` need no quotes), a `"quoted phrase"` (`\\"` for a quote inside), `$list`, `/regex/`
  (`\\/` for a slash inside; case-insensitive unless it starts with `(?-i)`), and fuzzy terms
  `~word` or `~"some phrase"`, with an optional score `~word:85` / `~"some phrase":85` (default 90);
- operators, upper case only: `NEAR/N` binds tightest, then `NOT`, then `AND`, then `OR`;
  parentheses group. Operands side by side are joined by AND (`North Korea` means
  `North AND Korea`: quote phrases). Lower-case `and`/`or`/`not`, `&&`, `||` and `-word` are errors
  that say what to write instead;
- `A NEAR/5 B`: both within 5 words of each other, in either order; a chain `A NEAR/5 B NEAR/5 C`
  is one proximity group of three. Operands of NEAR are terms, phrases, fuzzy terms, regexes,
  `$lists` or parenthesised OR-groups of those.

`AND` compiles to `Bool(all=...)`, `OR` to `Bool(any=...)`, `NOT x` to `Bool(none=(x,))`, flattened
(`A AND NOT B` is `Bool(all=(A,), none=(B,))`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rules._compose import (
    DEFAULT_FUZZY_SCORE,
    LIST_NAME,
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    all_of,
    any_of,
    list_node,
    near_operand,
    not_,
    regex_problem,
    score_problem,
    shorten,
    term_problem,
    unknown_list,
    within_problem,
)
from rules.ast import Bool, Fuzzy, Near, Node, Regex, Term

_SPACE = re.compile(r"\s*")
_WORD = re.compile(r'[^\s()"]+')
# "Unrolled" loops: each repetition starts with a backslash, so an unclosed quote or regex fails in
# linear time (the obvious `(?:[^"\\]+|\\.)*` backtracks exponentially).
_PHRASE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_REGEX = re.compile(r"/([^/\\]*(?:\\.[^/\\]*)*)/", re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SCORE = re.compile(r":(\d+)(?=[\s()]|$)")
_WORD_SCORE = re.compile(r"(.+?):(\d+)", re.DOTALL)
_NEAR = re.compile(r"NEAR/(\d+)")
_DELIMITER = re.compile(r"[\s()]|$")

Kind = Literal["(", ")", "AND", "OR", "NOT", "NEAR", "LEAF", "END"]
_OPERATORS: dict[str, Kind] = {"AND": "AND", "OR": "OR", "NOT": "NOT"}


def _run(pattern: re.Pattern[str], text: str, pos: int) -> str:
    """The text `pattern` matches at `pos`; callers only ask where it cannot fail."""
    m = pattern.match(text, pos)
    return m.group() if m else ""


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed; `column` is 1-based within the query text."""

    def __init__(self, message: str, column: int) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} (column {column})")


@dataclass(frozen=True)
class _Token:
    kind: Kind
    column: int
    text: str
    node: Node | None = None
    distance: int = 0

    def describe(self) -> str:
        return "end of query" if self.kind == "END" else f"'{shorten(self.text, 40)[1:-1]}'"


def parse_query(text: str, lists: Mapping[str, Sequence[str] | Bool] | None = None) -> Node:
    """Compile a query string to a rule tree. `lists` gives what `$name` refers to: the list's
    terms, or the node it already expands to (the loader passes those, so every use of a list shares
    one node). Raises `QuerySyntaxError` with the column of the first problem."""
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(
            f"query is too long ({len(text)} characters, at most {MAX_QUERY_CHARS})", 1
        )
    return _Parser(text, _Lexer(text, lists or {})).parse()


class _Lexer:
    """Turns the query into tokens lazily, so errors are reported in reading order."""

    def __init__(self, text: str, lists: Mapping[str, Sequence[str] | Bool]) -> None:
        self.text = text
        self.lists = lists

    def tokens(self) -> Iterator[_Token]:
        text, pos = self.text, 0
        while True:
            pos += len(_run(_SPACE, text, pos))
            if pos >= len(text):
                yield _Token("END", len(text) + 1, "")
                return
            char = text[pos]
            if char in "()":
                yield _Token("(" if char == "(" else ")", pos + 1, char)
                pos += 1
                continue
            lexer = {'"': self._phrase, "~": self._fuzzy, "/": self._regex, "$": self._list}
            token, pos = lexer.get(char, self._word)(pos)
            yield token

    def _leaf(self, node: Node, pos: int, end: int) -> tuple[_Token, int]:
        return _Token("LEAF", pos + 1, self.text[pos:end], node), end

    def _quoted(self, pos: int) -> tuple[str, int]:
        m = _PHRASE.match(self.text, pos)
        if m is None:
            raise QuerySyntaxError('unclosed quote: end the phrase with "', pos + 1)
        phrase = _UNESCAPE.sub(r"\1", m.group(1))
        problem = term_problem(phrase)
        if problem:
            raise QuerySyntaxError(problem, pos + 1)
        return phrase.strip(), m.end()

    def _phrase(self, pos: int) -> tuple[_Token, int]:
        phrase, end = self._quoted(pos)
        return self._leaf(Term(phrase), pos, end)

    def _fuzzy(self, pos: int) -> tuple[_Token, int]:
        start, text = pos, self.text
        pos += 1
        if pos >= len(text) or _DELIMITER.match(text, pos):
            raise QuerySyntaxError("~ must be followed by a word or a quoted phrase", start + 1)
        if text[pos] in "$/":
            raise QuerySyntaxError("~ applies to a word or a quoted phrase only", start + 1)
        if text[pos] == '"':
            phrase, pos = self._quoted(pos)
            score = DEFAULT_FUZZY_SCORE
            if pos < len(text) and text[pos] == ":":
                m = _SCORE.match(text, pos)
                if m is None:
                    raise QuerySyntaxError('a fuzzy score is written ~"phrase":85', pos + 1)
                score, pos = self._score(m.group(1), pos), m.end()
            return self._leaf(Fuzzy(phrase, score), start, pos)
        word = _run(_WORD, text, pos)
        end = pos + len(word)
        score = DEFAULT_FUZZY_SCORE
        m = _WORD_SCORE.fullmatch(word)
        if m:
            word, score = m.group(1), self._score(m.group(2), pos + len(m.group(1)))
        problem = term_problem(word)
        if problem:
            raise QuerySyntaxError(problem, pos + 1)
        return self._leaf(Fuzzy(word, score), start, end)

    @staticmethod
    def _score(digits: str, colon: int) -> int:
        problem = score_problem(int(digits))
        if problem:
            raise QuerySyntaxError(problem, colon + 2)
        return int(digits)

    def _regex(self, pos: int) -> tuple[_Token, int]:
        m = _REGEX.match(self.text, pos)
        if m is None:
            raise QuerySyntaxError("unclosed regex: end it with / (write \\/ for a slash)", pos + 1)
        problem = regex_problem(m.group(1))
        if problem:
            raise QuerySyntaxError(problem, pos + 1)
        if not _DELIMITER.match(self.text, m.end()):
            raise QuerySyntaxError(
                "a regex ends at its closing /: flags are not supported (regexes are "
                "case-insensitive unless they start with (?-i))",
                m.end() + 1,
            )
        return self._leaf(Regex(m.group(1)), pos, m.end())

    def _list(self, pos: int) -> tuple[_Token, int]:
        word = _run(_WORD, self.text, pos)
        name = word[1:]
        if not LIST_NAME.fullmatch(name):
            raise QuerySyntaxError(
                f"{shorten(word)} is not a list name ($ then letters, digits, '-' or '_')", pos + 1
            )
        if name not in self.lists:
            raise QuerySyntaxError(unknown_list(word, self.lists), pos + 1)
        terms = self.lists[name]
        node = terms if isinstance(terms, Bool) else list_node(name, terms)
        return self._leaf(node, pos, pos + len(word))

    def _word(self, pos: int) -> tuple[_Token, int]:
        word = _run(_WORD, self.text, pos)
        end = pos + len(word)
        if word in _OPERATORS:
            return _Token(_OPERATORS[word], pos + 1, word), end
        m = _NEAR.fullmatch(word)
        if m:
            problem = within_problem(int(m.group(1)))
            if problem:
                raise QuerySyntaxError(f"NEAR distance: {problem}", pos + 1)
            return _Token("NEAR", pos + 1, word, distance=int(m.group(1))), end
        problem = _misused_operator(word)
        if problem is None:
            problem = term_problem(word)
        if problem:
            raise QuerySyntaxError(problem, pos + 1)
        return self._leaf(Term(word), pos, end)


def _misused_operator(word: str) -> str | None:
    """Operators from other search syntaxes, and lower-case operators, said back in this one."""
    upper = word.upper()
    if upper in ("AND", "OR", "NOT"):
        return (
            f"operators are written in upper case: {upper}; to search for the word "
            f'itself, quote it: "{word}"'
        )
    if upper == "NEAR" or upper.startswith("NEAR/"):
        return "NEAR is written in upper case with a distance in words, like NEAR/5"
    if word in ("&&", "&"):
        return "write AND instead of &&"
    if word in ("||", "|"):
        return "write OR instead of ||"
    if word[0] in "-!" and len(word) > 1 and word[1].isalnum():
        return f"to exclude a word write NOT {word[1:]}"
    return None


class _Parser:
    """Recursive descent: or_expr > and_expr > unary (NOT) > near_expr > primary."""

    def __init__(self, text: str, lexer: _Lexer) -> None:
        self.text = text
        self.stream = lexer.tokens()
        self.current = next(self.stream)
        self.depth = 0

    def kind(self) -> Kind:
        return self.current.kind

    def take(self) -> _Token:
        token = self.current
        if self.kind() != "END":
            self.current = next(self.stream)
        return token

    def parse(self) -> Node:
        if self.kind() == "END":
            raise QuerySyntaxError("empty query", 1)
        node = self.or_expr(None)
        if self.kind() == ")":
            raise QuerySyntaxError("unmatched ')'", self.current.column)
        return node

    def or_expr(self, after: _Token | None) -> Node:
        parts = [self.and_expr(after)]
        while self.kind() == "OR":
            parts.append(self.and_expr(self.take()))
        return any_of(parts)

    def and_expr(self, after: _Token | None) -> Node:
        parts = [self.unary(after)]
        while True:
            if self.kind() == "AND":
                parts.append(self.unary(self.take()))
            elif self.kind() in ("LEAF", "(", "NOT"):  # implicit AND
                parts.append(self.unary(None))
            else:
                return all_of(parts)

    def unary(self, after: _Token | None) -> Node:
        nots = 0
        while self.kind() == "NOT":
            after = self.take()
            nots += 1
        node = self.near_expr(after)
        # NOT NOT x is x: only the parity matters, and it keeps the tree shallow.
        return not_(node) if nots % 2 else node

    def near_expr(self, after: _Token | None) -> Node:
        first = self.current
        node = self.primary(after)
        if self.kind() != "NEAR":
            return node
        operands = [self.operand(node, first)]
        distance = self.current.distance
        while self.kind() == "NEAR":
            op = self.take()
            if op.distance != distance:
                raise QuerySyntaxError(
                    f"one NEAR chain has one distance: NEAR/{distance} and then {op.text}; "
                    "use parentheses and AND to combine different distances",
                    op.column,
                )
            start = self.current
            operands.append(self.operand(self.primary(op), start))
        return Near(tuple(operands), distance)

    @staticmethod
    def operand(node: Node, token: _Token) -> Node:
        operand = near_operand(node)
        if operand is None:
            raise QuerySyntaxError(
                "NEAR joins terms, phrases, ~fuzzy terms, /regexes/, $lists or (... OR ...) groups",
                token.column,
            )
        return operand

    def primary(self, after: _Token | None) -> Node:
        token = self.take()
        if token.kind == "LEAF" and token.node is not None:
            return token.node
        if token.kind == "(":
            return self.group(token)
        if after is None and token.kind in ("AND", "OR", "NEAR"):
            raise QuerySyntaxError(f"{token.text} needs a term before it", token.column)
        if after is None and token.kind == ")":
            raise QuerySyntaxError("unmatched ')'", token.column)
        where = f"after {after.text}" if after else "here"
        raise QuerySyntaxError(f"expected a term {where}, found {token.describe()}", token.column)

    def group(self, opening: _Token) -> Node:
        if self.kind() == ")":
            raise QuerySyntaxError("empty parentheses", opening.column)
        if self.kind() == "END":
            raise QuerySyntaxError("unclosed '(': add the matching ')'", opening.column)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(
                f"parentheses are nested too deeply (more than {MAX_DEPTH} levels)", opening.column
            )
        node = self.or_expr(None)
        if self.kind() != ")":
            raise QuerySyntaxError("unclosed '(': add the matching ')'", opening.column)
        self.take()
        self.depth -= 1
        return node


__all__ = ["MAX_QUERY_CHARS", "QuerySyntaxError", "parse_query"]
