"""The alert condition grammar: a tokenizer and a recursive-descent parser.

Rule loading calls `parse_condition` once per rule; the evaluator walks the frozen
AST it returns. Nothing here runs Python `eval`, reads the store or the clock.

Grammar, loosest binding first (keywords are case-insensitive)::

    condition  := or_expr                      must be a condition, not a number
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | "(" or_expr ")" | call | selector
    call       := FUNCTION "(" selector "," NUMBER ")"
    selector   := NAME ("{" (matcher ("," matcher)* ","?)? "}")?
    matcher    := NAME ("=" | "!=" | "=~" | "!~") STRING

- NUMBER is `80`, `0.5`, `1e6`, or a duration `500ms`, `30s`, `5m`, `2h`, `1d`, `1w`,
  which becomes seconds (`5m` is 300).
- FUNCTION is one of `avg min max last count rate delta absent`; each takes a
  selector and a window length. `absent` is a condition; the others are numbers.
- STRING is in double or single quotes. Only `\\"`, `\\'` and `\\\\` are escapes;
  any other backslash stays as written, so `"\\d+"` reaches the regex unchanged.
- Regex matchers must match the whole label value (`=~"sd.*"` matches `sda`, not
  `xsda`). A missing label counts as the empty string.
- Comparisons do not chain: `1 < x < 5` is a syntax error; write `x > 1 and x < 5`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NoReturn, TypeAlias, get_args

from atlas_tui.alerts.errors import RuleSyntaxError
from atlas_tui.durations import parse_duration

__all__ = [
    "Absent",
    "Arithmetic",
    "ArithmeticOp",
    "Comparison",
    "ComparisonOp",
    "Expr",
    "Logical",
    "Matcher",
    "MatchOp",
    "Not",
    "Number",
    "Selector",
    "Window",
    "WindowFunction",
    "is_condition",
    "parse_condition",
    "referenced_metrics",
]

ComparisonOp = Literal[">", ">=", "<", "<=", "==", "!="]
ArithmeticOp = Literal["+", "-", "*", "/"]
MatchOp = Literal["=", "!=", "=~", "!~"]
WindowFunction = Literal["avg", "min", "max", "last", "count", "rate", "delta"]

FUNCTIONS = (*get_args(WindowFunction), "absent")
"""Every function name the grammar accepts, in the order error messages list them."""


@dataclass(frozen=True, slots=True)
class Number:
    """A literal number; durations are already converted to seconds."""

    value: float


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher inside `{…}` of a selector."""

    label: str
    """Label name, for example `mount`."""
    op: MatchOp
    """`=` and `!=` compare text; `=~` and `!~` match a regex against the whole value."""
    value: str
    """Text or regular expression, without the quotes."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether `labels` satisfy this matcher (a missing label is `""`)."""
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = _compiled(self.value).fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


@dataclass(frozen=True, slots=True)
class Selector:
    """A metric name with optional label matchers; alone it means the latest value."""

    name: str
    matchers: tuple[Matcher, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether a series with `labels` satisfies every matcher."""
        return all(matcher.matches(labels) for matcher in self.matchers)

    def equality_labels(self) -> tuple[tuple[str, str], ...]:
        """Return the `label="value"` matchers as sorted label pairs."""
        return tuple(sorted((m.label, m.value) for m in self.matchers if m.op == "="))

    def __str__(self) -> str:
        if not self.matchers:
            return self.name
        return f"{self.name}{{{', '.join(str(m) for m in self.matchers)}}}"


@dataclass(frozen=True, slots=True)
class Window:
    """A function over each matching series' samples in the last `duration` seconds."""

    func: WindowFunction
    selector: Selector
    duration: float


@dataclass(frozen=True, slots=True)
class Absent:
    """True when no matching series has a sample in the last `duration` seconds."""

    selector: Selector
    duration: float


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """`left op right` over numbers; unary minus is `-1 * operand`."""

    op: ArithmeticOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Comparison:
    """`left op right`, true or false per series."""

    op: ComparisonOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Logical:
    """`left and right` or `left or right` over two conditions."""

    op: Literal["and", "or"]
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    """`not operand` over a condition."""

    operand: Expr


Expr: TypeAlias = "Number | Selector | Window | Absent | Arithmetic | Comparison | Logical | Not"
"""Any node of a parsed condition."""


def parse_condition(text: str, rule_id: str = "<condition>") -> Expr:
    """Parse a rule condition into its AST.

    Args:
        text: The condition as written in the config, for example `cpu_usage > 80`.
        rule_id: Named in error messages.

    Returns:
        The root node, which is always a condition (see `is_condition`).

    Raises:
        RuleSyntaxError: the text does not follow the grammar; the error carries the
            1-based column and what was expected there.
    """
    return _Parser(text, rule_id).parse()


def is_condition(node: Expr) -> bool:
    """Return whether `node` yields true/false (a condition) rather than a number."""
    return isinstance(node, (Comparison, Logical, Not, Absent))


def referenced_metrics(node: Expr) -> frozenset[str]:
    """Return every metric name the condition reads, for unknown-metric checks."""
    return frozenset(selector.name for selector in _selectors(node))


# --- tokenizer ------------------------------------------------------------------

_COMPARISON_OPS: tuple[str, ...] = get_args(ComparisonOp)
_MATCH_OPS: tuple[str, ...] = get_args(MatchOp)
_KEYWORDS = ("and", "or", "not")
_SYMBOLS = (">=", "<=", "==", "!=", "=~", "!~", ">", "<", "=", "(", ")", "{", "}", ",", "+", "-", "*", "/")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+|ms|s|m|h|d|w)?(?![A-Za-z0-9_.])")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Za-z0-9_.]+")
_UNIT_SUFFIX = re.compile(r"(ms|s|m|h|d|w)$")

_OPERAND = 'a number, a metric name or "("'
_COMPARISON = "a comparison operator (>, >=, <, <=, ==, !=)"
_NOT_A_CONDITION = "a number or a metric name, not a condition"

TokenKind = Literal["number", "name", "string", "symbol", "end", "error"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str
    column: int
    number: float = 0.0
    string: str = ""
    hint: str = ""
    """For an error token: what would have been valid, overriding the parser's guess."""


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        token = _next_token(text, index)
        tokens.append(token)
        index += len(token.text)
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _next_token(text: str, index: int) -> _Token:
    char = text[index]
    column = index + 1
    if char.isdigit():
        return _number_token(text, index)
    if match := _NAME.match(text, index):
        return _Token("name", match.group(), column)
    if char in "\"'":
        return _string_token(text, index)
    for symbol in _SYMBOLS:
        if text.startswith(symbol, index):
            return _Token("symbol", symbol, column)
    return _Token("error", char, column)


def _number_token(text: str, index: int) -> _Token:
    column = index + 1
    match = _NUMBER.match(text, index)
    if match is None:
        word = _WORD.match(text, index)
        assert word is not None  # text[index] is a digit, which _WORD matches
        hint = "a number, or a duration with a unit of ms, s, m, h, d or w"
        return _Token("error", word.group(), column, hint=hint)
    raw = match.group()
    value = parse_duration(raw) if _UNIT_SUFFIX.search(raw) else float(raw)
    return _Token("number", raw, column, number=value)


def _string_token(text: str, index: int) -> _Token:
    quote = text[index]
    chars: list[str] = []
    position = index + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return _Token("string", text[index : position + 1], index + 1, string="".join(chars))
        if char == "\\" and position + 1 < len(text) and text[position + 1] in (quote, "\\"):
            chars.append(text[position + 1])
            position += 2
            continue
        chars.append(char)
        position += 1
    return _Token("error", text[index:], index + 1, hint=f"a closing {quote} for this string")


# --- parser ---------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, rule_id: str) -> None:
        self.text = text
        self.rule_id = rule_id
        self.tokens = _tokenize(text)
        self.position = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.position]

    def parse(self) -> Expr:
        node = self._or()
        self._require_condition(node)
        if self.token.kind != "end":
            self._fail('"and", "or" or end of condition')
        return node

    def _or(self) -> Expr:
        left = self._and()
        while self._at_keyword("or"):
            self._require_condition(left)
            self._advance()
            right = self._and()
            self._require_condition(right)
            left = Logical("or", left, right)
        return left

    def _and(self) -> Expr:
        left = self._not()
        while self._at_keyword("and"):
            self._require_condition(left)
            self._advance()
            right = self._not()
            self._require_condition(right)
            left = Logical("and", left, right)
        return left

    def _not(self) -> Expr:
        if not self._at_keyword("not"):
            return self._comparison()
        self._advance()
        operand = self._not()
        self._require_condition(operand)
        return Not(operand)

    def _comparison(self) -> Expr:
        left = self._sum()
        if not self._at_symbol(*_COMPARISON_OPS):
            return left
        if is_condition(left):
            self._fail('"and" or "or"')
        op = self._advance().text
        right = self._number_operand(self._sum)
        return Comparison(op, left, right)  # type: ignore[arg-type]

    def _sum(self) -> Expr:
        left = self._product()
        while self._at_symbol("+", "-"):
            self._require_number(left)
            op = self._advance().text
            left = Arithmetic(op, left, self._number_operand(self._product))  # type: ignore[arg-type]
        return left

    def _product(self) -> Expr:
        left = self._unary()
        while self._at_symbol("*", "/"):
            self._require_number(left)
            op = self._advance().text
            left = Arithmetic(op, left, self._number_operand(self._unary))  # type: ignore[arg-type]
        return left

    def _unary(self) -> Expr:
        if not self._at_symbol("-"):
            return self._primary()
        self._advance()
        operand = self._number_operand(self._unary)
        if isinstance(operand, Number):
            return Number(-operand.value)
        return Arithmetic("*", Number(-1.0), operand)

    def _primary(self) -> Expr:
        token = self.token
        if token.kind == "number":
            self._advance()
            return Number(token.number)
        if self._at_symbol("("):
            self._advance()
            node = self._or()
            self._expect_symbol(")", '")"')
            return node
        if token.kind != "name" or token.text.lower() in _KEYWORDS:
            self._fail(_OPERAND)
        if self.tokens[self.position + 1].text == "(":
            return self._call()
        return self._selector()

    def _call(self) -> Expr:
        name = self.token
        if name.text not in FUNCTIONS:
            self._fail(f"a function name ({', '.join(FUNCTIONS)})")
        self._advance()
        self._advance()  # the "(" that _primary saw
        selector = self._selector()
        self._expect_symbol(",", '"," and a window such as 5m')
        duration = self._duration()
        self._expect_symbol(")", '")"')
        if name.text == "absent":
            return Absent(selector, duration)
        return Window(name.text, selector, duration)  # type: ignore[arg-type]

    def _duration(self) -> float:
        token = self.token
        if token.kind != "number" or token.number <= 0:
            self._fail("a window length greater than zero, such as 30s or 5m")
        self._advance()
        return token.number

    def _selector(self) -> Selector:
        token = self.token
        if token.kind != "name" or token.text.lower() in _KEYWORDS:
            self._fail("a metric name")
        self._advance()
        if not self._at_symbol("{"):
            return Selector(token.text)
        self._advance()
        matchers: list[Matcher] = []
        while not self._at_symbol("}"):
            matchers.append(self._matcher())
            if not self._at_symbol(","):
                break
            self._advance()
        self._expect_symbol("}", '"," or "}"')
        return Selector(token.text, tuple(matchers))

    def _matcher(self) -> Matcher:
        label = self.token
        if label.kind != "name":
            self._fail('a label name or "}"')
        self._advance()
        if not self._at_symbol(*_MATCH_OPS):
            self._fail("one of =, !=, =~, !~")
        op = self._advance().text
        value = self.token
        if value.kind != "string":
            self._fail('a quoted string such as "/"')
        if op in ("=~", "!~"):
            self._check_regex(value)
        self._advance()
        return Matcher(label.text, op, value.string)  # type: ignore[arg-type]

    def _check_regex(self, token: _Token) -> None:
        try:
            _compiled(token.string)
        except re.error as err:
            self._fail(f"a valid regular expression ({err.msg})")

    def _number_operand(self, parse: _ParseStep) -> Expr:
        start = self.token
        node = parse()
        if is_condition(node):
            raise self._error(_NOT_A_CONDITION, start)
        return node

    def _require_number(self, node: Expr) -> None:
        if is_condition(node):
            self._fail('"and" or "or"')

    def _require_condition(self, node: Expr) -> None:
        if not is_condition(node):
            self._fail(_COMPARISON)

    def _at_keyword(self, word: str) -> bool:
        return self.token.kind == "name" and self.token.text.lower() == word

    def _at_symbol(self, *symbols: str) -> bool:
        return self.token.kind == "symbol" and self.token.text in symbols

    def _expect_symbol(self, symbol: str, expected: str) -> None:
        if not self._at_symbol(symbol):
            self._fail(expected)
        self._advance()

    def _advance(self) -> _Token:
        token = self.token
        self.position += 1
        return token

    def _fail(self, expected: str) -> NoReturn:
        raise self._error(expected, self.token)

    def _error(self, expected: str, token: _Token) -> RuleSyntaxError:
        if token.kind == "error" and token.hint:
            expected = token.hint
        if token.kind == "end":
            got = "end of condition"
        elif token.text[:1] in "\"'":
            got = token.text
        else:
            got = f'"{token.text}"'
        return RuleSyntaxError(self.rule_id, token.column, expected, self.text, got)


_ParseStep: TypeAlias = "Callable[[], Expr]"


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _selectors(node: Expr) -> Iterator[Selector]:
    match node:
        case Selector():
            yield node
        case Window(selector=selector) | Absent(selector=selector):
            yield selector
        case Arithmetic(left=left, right=right) | Comparison(left=left, right=right) | Logical(
            left=left, right=right
        ):
            yield from _selectors(left)
            yield from _selectors(right)
        case Not(operand=operand):
            yield from _selectors(operand)
