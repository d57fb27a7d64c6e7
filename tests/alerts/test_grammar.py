"""The condition grammar: precedence, numbers and units, matchers, functions, errors."""

from __future__ import annotations

import pytest

from atlas_tui.alerts.errors import RuleSyntaxError
from atlas_tui.alerts.grammar import (
    Absent,
    Arithmetic,
    Comparison,
    Logical,
    Matcher,
    Not,
    Number,
    Selector,
    Window,
    is_condition,
    parse_condition,
    referenced_metrics,
)

A = Selector("a")
B = Selector("b")
C = Selector("c")


def gt(left: object, right: float) -> Comparison:
    return Comparison(">", left, Number(right))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a > 1 or b > 2 and c > 3", Logical("or", gt(A, 1), Logical("and", gt(B, 2), gt(C, 3)))),
        ("(a > 1 or b > 2) and c > 3", Logical("and", Logical("or", gt(A, 1), gt(B, 2)), gt(C, 3))),
        ("not a > 1 and b > 2", Logical("and", Not(gt(A, 1)), gt(B, 2))),
        ("not not a > 1", Not(Not(gt(A, 1)))),
        ("a > 1 and b > 2 and c > 3", Logical("and", Logical("and", gt(A, 1), gt(B, 2)), gt(C, 3))),
        ("a + b * 2 > 3", gt(Arithmetic("+", A, Arithmetic("*", B, Number(2.0))), 3)),
        ("(a + b) * 2 > 3", gt(Arithmetic("*", Arithmetic("+", A, B), Number(2.0)), 3)),
        ("a - b - c > 0", gt(Arithmetic("-", Arithmetic("-", A, B), C), 0)),
        ("a / b > 0", gt(Arithmetic("/", A, B), 0)),
        ("-a > -1", gt(Arithmetic("*", Number(-1.0), A), -1)),
        ("a > 1 AND b > 2 Or c > 3", Logical("or", Logical("and", gt(A, 1), gt(B, 2)), gt(C, 3))),
    ],
)
def test_precedence(text: str, expected: object) -> None:
    """`not` binds tighter than `and`, `and` than `or`, `*` than `+`; chains go left."""
    assert parse_condition(text) == expected


@pytest.mark.parametrize(
    ("op"),
    [">", ">=", "<", "<=", "==", "!="],
)
def test_comparison_operators(op: str) -> None:
    """Every comparison operator parses into a comparison node."""
    assert parse_condition(f"a {op} 1") == Comparison(op, A, Number(1.0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("literal", "seconds"),
    [
        ("80", 80.0),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
    ],
)
def test_numbers_and_units(literal: str, seconds: float) -> None:
    """Numbers parse as written; a duration unit converts to seconds."""
    assert parse_condition(f"a > {literal}") == gt(A, seconds)


@pytest.mark.parametrize(
    ("text", "matchers"),
    [
        ('disk_usage{mount="/"} > 1', (Matcher("mount", "=", "/"),)),
        ("disk_usage{mount='/'} > 1", (Matcher("mount", "=", "/"),)),
        ('disk_usage{mount!="/boot"} > 1', (Matcher("mount", "!=", "/boot"),)),
        ('disk_usage{device=~"sd.*"} > 1', (Matcher("device", "=~", "sd.*"),)),
        ('disk_usage{device!~"loop\\d+"} > 1', (Matcher("device", "!~", "loop\\d+"),)),
        ('disk_usage{a="1", b="2",} > 1', (Matcher("a", "=", "1"), Matcher("b", "=", "2"))),
        ('disk_usage{a="say \\"hi\\""} > 1', (Matcher("a", "=", 'say "hi"'),)),
        ("disk_usage{} > 1", ()),
    ],
)
def test_selector_matchers(text: str, matchers: tuple[Matcher, ...]) -> None:
    """Selectors take =, !=, =~ and !~ matchers with quoted values."""
    assert parse_condition(text) == gt(Selector("disk_usage", matchers), 1)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        (Matcher("device", "=~", "sd.*"), {"device": "sda"}, True),
        (Matcher("device", "=~", "sd.*"), {"device": "xsda"}, False),
        (Matcher("device", "!~", "sd.*"), {"device": "nvme0"}, True),
        (Matcher("device", "=", ""), {}, True),
        (Matcher("device", "!=", "sda"), {}, True),
        (Matcher("device", "=~", ".+"), {}, False),
    ],
)
def test_matcher_semantics(matcher: Matcher, labels: dict[str, str], expected: bool) -> None:
    """Regexes match the whole value and a missing label counts as the empty string."""
    assert matcher.matches(labels) is expected


@pytest.mark.parametrize("func", ["avg", "min", "max", "last", "count", "rate", "delta"])
def test_window_functions(func: str) -> None:
    """Each window function takes a selector and a window length in seconds."""
    expected = gt(Window(func, Selector("x", (Matcher("a", "=", "b"),)), 300.0), 1)  # type: ignore[arg-type]
    assert parse_condition(f'{func}(x{{a="b"}}, 5m) > 1') == expected


def test_absent_is_a_condition() -> None:
    """`absent(x, 2m)` is a complete condition on its own."""
    assert parse_condition("absent(x, 2m)") == Absent(Selector("x"), 120.0)


def test_function_name_as_metric() -> None:
    """A function name without parentheses is an ordinary metric name."""
    assert parse_condition("rate > 1") == gt(Selector("rate"), 1)


def test_is_condition() -> None:
    """Comparisons, logic and absent are conditions; numbers and selectors are not."""
    assert is_condition(parse_condition("a > 1"))
    assert not is_condition(A)
    assert not is_condition(Number(1.0))


def test_referenced_metrics() -> None:
    """Every metric name read anywhere in the condition is reported once."""
    expr = parse_condition("avg(a, 5m) > b + 1 or not absent(c{x='y'}, 1m) and a < 3")
    assert referenced_metrics(expr) == frozenset({"a", "b", "c"})


def test_selector_text_round_trip() -> None:
    """A selector prints back as parseable text."""
    text = 'x{a="q\\"", b=~"\\d+"}'
    selector = parse_condition(f"{text} > 1").left  # type: ignore[union-attr]
    assert parse_condition(f"{selector} > 1").left == selector  # type: ignore[union-attr]


def test_error_message_with_caret() -> None:
    """A syntax error names rule, column, expectation and what was found, with a caret."""
    with pytest.raises(RuleSyntaxError) as caught:
        parse_condition("cpu_usage > )", "high_cpu")
    lines = str(caught.value).splitlines()
    assert lines[0] == 'rule high_cpu: column 13: expected a number, a metric name or "(", got ")"'
    assert lines[1] == "  cpu_usage > )"
    assert lines[2] == "              ^"


@pytest.mark.parametrize(
    ("text", "column", "expected", "got"),
    [
        ("cpu_usage", 10, "a comparison operator", "end of condition"),
        ("cpu_usage 80", 11, "a comparison operator", '"80"'),
        ("cpu_usage > 80 and", 19, "a number, a metric name", "end of condition"),
        ("1 < x < 5", 7, '"and", "or" or end of condition', '"<"'),
        ("(a > 1) > 2", 9, '"and" or "or"', '">"'),
        ("a > (b > 1)", 5, "not a condition", '"("'),
        ("(a > 1) + 2 > 1", 9, '"and" or "or"', '"+"'),
        ("a > 1 and b", 12, "a comparison operator", "end of condition"),
        ("a > 1 or 2", 11, "a comparison operator", "end of condition"),
        ("not a", 6, "a comparison operator", "end of condition"),
        ("(a > 1", 7, '")"', "end of condition"),
        ("a > 1)", 6, '"and", "or" or end of condition', '")"'),
        ("foo(x, 5m) > 1", 1, "a function name", '"foo"'),
        ("avg(x) > 1", 6, '","', '")"'),
        ("avg(x, ) > 1", 8, "a window length", '")"'),
        ("avg(x, 0) > 1", 8, "greater than zero", '"0"'),
        ("avg(1, 5m) > 1", 5, "a metric name", '"1"'),
        ("x{a=} > 1", 5, "a quoted string", '"}"'),
        ("x{=\"b\"} > 1", 3, "a label name", '"="'),
        ('x{a "b"} > 1', 5, "one of =, !=, =~, !~", '"b"'),
        ('x{a="b" c="d"} > 1', 9, '"," or "}"', '"c"'),
        ('x{a=~"("} > 1', 6, "a valid regular expression", '"("'),
        ('x > "open', 5, 'a closing "', '"open'),
        ("x > 5min", 5, "a duration with a unit of ms, s, m, h, d or w", '"5min"'),
        ("x > 5 & y", 7, '"and", "or" or end of condition', '"&"'),
        ("x = 5", 3, "a comparison operator", '"="'),
        ("and > 1", 1, "a number, a metric name", '"and"'),
    ],
)
def test_syntax_errors(text: str, column: int, expected: str, got: str) -> None:
    """Each malformed condition fails at the right column with a useful expectation."""
    with pytest.raises(RuleSyntaxError) as caught:
        parse_condition(text, "r1")
    error = caught.value
    assert error.column == column
    assert expected in error.expected
    assert error.got == got
    assert error.rule_id == "r1"


def test_error_without_got_reads_text() -> None:
    """Built by hand without `got`, the error quotes the word at the column."""
    error = RuleSyntaxError("r", 5, "a number", "a > bad")
    assert error.got == '"bad"'
