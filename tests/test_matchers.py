"""Alertmanager's matcher syntax in runbooks: parsed and evaluated as Alertmanager does.

The parser cases are the inputs and results of Alertmanager's own matcher parser tests
(``pkg/labels/parse_test.go``, ``TestMatchers``) and the ``matchers:`` examples of its
configuration documentation; the evaluation cases follow its documented semantics (an absent label
is the empty string, regexes are anchored).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paramedic.actions.registry import build_registry
from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.loader import lint_runbook, parse_runbooks
from paramedic.core.matcher import MatchIndex, runbook_matches
from paramedic.core.matchers import LabelMatcher, MatcherSyntaxError, MatchOp, parse_matcher, parse_matchers
from paramedic.core.runbooks import Runbook
from paramedic.runbooks.loading import load, may_match_same_alert

EQ, NE, RE, NRE = MatchOp.EQUAL, MatchOp.NOT_EQUAL, MatchOp.REGEX, MatchOp.NOT_REGEX
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def triples(text: str) -> list[tuple[str, MatchOp, str]]:
    return [(m.name, m.op, m.value) for m in parse_matchers(text)]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param('{foo="bar"}', [("foo", EQ, "bar")], id="equal"),
        pytest.param('{foo=~"bar.*"}', [("foo", RE, "bar.*")], id="regex"),
        pytest.param('{foo!="bar"}', [("foo", NE, "bar")], id="not-equal"),
        pytest.param('{foo!~"bar.*"}', [("foo", NRE, "bar.*")], id="not-regex"),
        pytest.param('{foo="bar", baz!="quux"}', [("foo", EQ, "bar"), ("baz", NE, "quux")], id="two"),
        pytest.param(
            '{foo="bar",baz!~".*quux", derp="wat"}',
            [("foo", EQ, "bar"), ("baz", NRE, ".*quux"), ("derp", EQ, "wat")],
            id="three",
        ),
        pytest.param('{foo=""}', [("foo", EQ, "")], id="empty-quoted"),
        pytest.param('{foo="bar,quux", job="job1"}', [("foo", EQ, "bar,quux"), ("job", EQ, "job1")], id="comma"),
        pytest.param('{foo = "bar", dings != "bums", }', [("foo", EQ, "bar"), ("dings", NE, "bums")], id="spaces"),
        pytest.param("foo=bar,dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")], id="unquoted-no-braces"),
        pytest.param(
            '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
            [("quote", EQ, 'She said: "Hi, ladies! That\'s gender-neutral…"')],
            id="escaped-quotes",
        ),
        pytest.param('statuscode=~"5.."', [("statuscode", RE, "5..")], id="regex-no-braces"),
        pytest.param("tricky=~~~", [("tricky", RE, "~~")], id="tricky"),
        pytest.param('trickier==\\\\=\\=\\"', [("trickier", EQ, '=\\=\\="')], id="trickier"),
        pytest.param(
            'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
            [("contains_quote", NE, '"'), ("contains_comma", NRE, "foo,bar")],
            id="quote-and-comma",
        ),
        # the configuration documentation's route example
        pytest.param("alertname = Watchdog", [("alertname", EQ, "Watchdog")], id="docs-unquoted"),
        pytest.param('severity =~ "warning|critical"', [("severity", RE, "warning|critical")], id="docs-regex"),
        pytest.param('foo = "bar,baz"', [("foo", EQ, "bar,baz")], id="docs-quoted-comma"),
    ],
)
def test_parses_like_alertmanager(text: str, want: list[tuple[str, MatchOp, str]]) -> None:
    assert triples(text) == want


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("job=", id="no-value"),
        pytest.param('job="value', id="unclosed-quote"),
        pytest.param('job=value"', id="trailing-quote"),
        pytest.param('trickier==\\\\=\\=\\""', id="trickier-quote"),
        pytest.param('contains_unescaped_quote = foo"bar', id="inner-quote"),
        pytest.param('{invalid-name = "valid label"}', id="bad-name"),
        pytest.param('{foo=~"invalid[regexp"}', id="bad-regex"),
        pytest.param('"{foo=\\"bar"}', id="double-escaped-1"),
        pytest.param('"foo=\\"bar"', id="double-escaped-2"),
        pytest.param('"foo=\\"bar\\""', id="double-escaped-3"),
        pytest.param('"{foo=\\"bar\\"}"', id="double-escaped-4"),
        pytest.param('"foo="bar""', id="double-quoted"),
    ],
)
def test_refuses_what_alertmanager_refuses(text: str) -> None:
    with pytest.raises(MatcherSyntaxError):
        parse_matchers(text)


@pytest.mark.parametrize(
    ("matcher", "labels", "result"),
    [
        pytest.param('severity=~"warning|critical"', {"severity": "critical"}, True, id="regex-alternative"),
        pytest.param('severity=~"warning|critical"', {"severity": "critical-ish"}, False, id="regex-anchored"),
        pytest.param('instance=~"some-api.*"', {"instance": "some-api-1:80"}, True, id="regex-prefix"),
        pytest.param('env!~"prod.*"', {"env": "production"}, False, id="not-regex"),
        pytest.param('env!~"prod.*"', {"env": "staging"}, True, id="not-regex-other"),
        pytest.param('env!~"prod.*"', {}, True, id="not-regex-absent"),
        pytest.param('team!="db"', {}, True, id="not-equal-absent"),
        pytest.param('team=""', {}, True, id="empty-means-absent"),
        pytest.param('team=""', {"team": "db"}, False, id="empty-not-present"),
        pytest.param('team=~".+"', {}, False, id="regex-needs-value"),
        pytest.param('v="~literal"', {"v": "~literal"}, True, id="literal-tilde"),
        pytest.param('v="!literal"', {"v": "!literal"}, True, id="literal-bang"),
    ],
)
def test_evaluates_like_alertmanager(matcher: str, labels: dict[str, str], result: bool) -> None:
    assert parse_matcher(matcher).matches_labels(labels) is result


@given(st.text(), st.sampled_from(list(MatchOp)))
def test_printed_matcher_parses_back(value: str, op: MatchOp) -> None:
    """What paramedic prints (API, dry run) is Alertmanager syntax that reads back the same."""
    try:
        m = LabelMatcher("label_x", op, value)
    except MatcherSyntaxError:
        return  # a regex that does not compile
    assert parse_matchers(str(m)) == [m]


@given(st.text())
def test_parser_never_raises_anything_but_a_syntax_error(text: str) -> None:
    with contextlib.suppress(MatcherSyntaxError):
        parse_matchers(text)


def alert(name: str, **labels: str) -> Alert:
    return Alert(
        source="alertmanager", fingerprint="f", name=name, status=AlertStatus.FIRING, starts_at=T0, labels=labels
    )


YAML = """\
apiVersion: paramedic/v1
runbooks:
  - name: am-style
    owner: team-web
    match:
      matchers:
        - alertname = HighErrorRate
        - severity =~ "warning|critical"
        - '{env!~"dev.*", team!="db"}'
  - name: whole-string
    owner: team-web
    match: 'alertname="DiskFull", mount="/"'
"""


def test_yaml_runbook_takes_alertmanager_matchers() -> None:
    located, problems = parse_runbooks(YAML, "rb.yaml")
    assert problems == []
    books = {loc.runbook.name: loc.runbook for loc in located}
    assert runbook_matches(books["am-style"], alert("HighErrorRate", severity="critical", env="prod"))
    assert not runbook_matches(books["am-style"], alert("HighErrorRate", severity="critical", env="dev-1"))
    assert runbook_matches(books["whole-string"], alert("DiskFull", mount="/"))


def test_yaml_matcher_error_points_at_the_item() -> None:
    text = YAML.replace('severity =~ "warning|critical"', 'severity =~ "warning|critical')
    _, problems = parse_runbooks(text, "rb.yaml")
    assert [(p.line, "unescaped double quote" in p.message) for p in problems] == [(8, True)]


def test_python_runbook_takes_the_same_matchers(tmp_path: Path) -> None:
    (tmp_path / "rb.py").write_text(
        "from paramedic import runbook, Context\n\n"
        "@runbook(match='alertname=\"HighErrorRate\", severity=~\"warning|critical\"', owner='team-web')\n"
        "async def roll_back(ctx: Context) -> None:\n"
        "    pass\n"
    )
    result = load([tmp_path], build_registry({}), lint=False)
    assert result.errors == []
    (book,) = result.runbooks
    assert runbook_matches(book, alert("HighErrorRate", severity="warning"))
    assert not runbook_matches(book, alert("HighErrorRate", severity="info"))


def test_index_reaches_a_runbook_keyed_only_by_a_matcher() -> None:
    books = [
        Runbook.model_validate({"name": "am", "owner": "t", "match": ['alertname="WorkerHung"']}),
        Runbook.model_validate({"name": "other", "owner": "t", "match": {"alertname": "Other"}}),
    ]
    idx = MatchIndex.build(books)
    assert [rb.name for rb in idx.match(alert("WorkerHung"))] == ["am"]
    assert idx.candidates(alert("Unrelated")) == []


def test_runbooks_pinned_to_different_values_do_not_overlap() -> None:
    a = Runbook.model_validate({"name": "a", "owner": "t", "match": ['alertname="A"']})
    b = Runbook.model_validate({"name": "b", "owner": "t", "match": {"alertname": "B"}})
    c = Runbook.model_validate({"name": "c", "owner": "t", "match": ['alertname=~"A|C"']})
    assert not may_match_same_alert(a, b)
    assert may_match_same_alert(a, c)


HEAD = "apiVersion: paramedic/v1\nrunbooks:\n  - name: x\n    owner: t\n    match:\n"


@pytest.mark.parametrize(
    ("value", "meant"),
    [
        pytest.param("!~dev.*", 'env!~"dev.*"', id="not-regex"),
        pytest.param("=~prod.*", 'env=~"prod.*"', id="regex"),
        pytest.param("!=prod", 'env!="prod"', id="not-equal"),
    ],
)
def test_validate_warns_on_old_forms_that_read_like_alertmanager(value: str, meant: str) -> None:
    text = HEAD + f"      labels: {{env: '{value}'}}\n"
    (loc,), problems = parse_runbooks(text, "rb.yaml")
    assert problems == []
    (warning,) = lint_runbook(loc)
    assert (warning.severity, warning.line, meant in warning.hint) == ("warning", 6, True)


def test_no_warning_for_the_unambiguous_old_forms() -> None:
    text = HEAD + "      labels: {env: '!prod', svc: '~web-.*'}\n"
    (loc,), _ = parse_runbooks(text, "rb.yaml")
    assert lint_runbook(loc) == []
