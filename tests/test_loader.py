"""Runbook parsing and `validate` diagnostics: file, line and column, with hints."""

from __future__ import annotations

from paramedic.actions.registry import build_registry
from paramedic.core.loader import lint_runbook, parse_runbooks
from paramedic.runbooks.loading import check_actions

GOOD = """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-hung-worker
    owner: team-payments
    match: {alertname: WorkerHung, labels: {service: payments-worker}}
    mode: auto
    guardrails:
      rate_limit: {max: 3, per: 1h, scope: target}
    steps:
      - action: shell.run
        with: {argv: ["true", "{{ labels.program }}"]}
    verify:
      http: {url: "http://{{ labels.instance }}/healthz", within: 60s}
    params:
      program: {pattern: '^[a-z0-9_-]{1,64}$'}
      instance: {pattern: '^[0-9.:]+$'}
"""


def test_good_file_parses_without_problems() -> None:
    books, problems = parse_runbooks(GOOD, "rb.yaml")
    assert problems == []
    assert books[0].runbook.name == "restart-hung-worker"
    assert lint_runbook(books[0]) == []


def test_unknown_key_has_position_and_suggestion() -> None:
    text = GOOD.replace("    guardrails:", "    guardrail:")
    _, problems = parse_runbooks(text, "rb.yaml")
    assert len(problems) == 1
    p = problems[0]
    assert (p.line, p.col) == (7, 5)
    assert "guardrail" in p.message
    assert "guardrails" in p.hint


def test_bad_duration_and_missing_owner() -> None:
    text = GOOD.replace("per: 1h", "per: 1 hour").replace("    owner: team-payments\n", "")
    _, problems = parse_runbooks(text, "rb.yaml")
    messages = [str(p) for p in problems]
    assert any("owner is required" in m and "rb.yaml:3:5" in m for m in messages), messages
    assert any("1 hour" in m and "30s, 15m" in m for m in messages), messages


def test_yaml_syntax_error_position() -> None:
    _, problems = parse_runbooks("apiVersion: paramedic/v1\nrunbooks:\n  - name: [oops\n", "bad.yaml")
    assert problems
    assert problems[0].file == "bad.yaml"
    assert problems[0].line >= 3


def test_unknown_action_suggests_the_right_name() -> None:
    books, _ = parse_runbooks(GOOD.replace("shell.run", "shell.rnu"), "rb.yaml")
    problems = check_actions(books[0], build_registry({}))
    assert problems[0].line == 10
    assert "did you mean 'shell.run'" in problems[0].hint


def test_undo_and_errors_are_checked_like_steps() -> None:
    text = GOOD.replace(
        '        with: {argv: ["true", "{{ labels.program }}"]}\n',
        '        with: {argv: ["true", "{{ labels.program }}"]}\n        errors: temporary\n'
        "        undo: {action: haproxy.redy, with: {backend: web, server: w1}}\n",
    )
    books, problems = parse_runbooks(text, "rb.yaml")
    assert problems == []
    step = books[0].runbook.steps[0]
    assert step.errors == "temporary"
    (problem,) = check_actions(books[0], build_registry({}))
    assert problem.message == "unknown undo action 'haproxy.redy'"
    assert "did you mean 'haproxy.ready'" in problem.hint
    _, problems = parse_runbooks(text.replace("errors: temporary", "errors: sometimes"), "rb.yaml")
    assert problems
    assert "permanent" in problems[0].message


def test_lints_for_auto_runbook_without_verify_rate_limit_or_params() -> None:
    text = """\
apiVersion: paramedic/v1
runbooks:
  - name: risky
    owner: t
    match: {alertname: X}
    mode: auto
    steps:
      - action: shell.run
        with: {argv: ["kill", "{{ labels.pid }}"]}
"""
    books, problems = parse_runbooks(text, "rb.yaml")
    assert problems == []
    warnings = [p.message for p in lint_runbook(books[0])]
    assert any("no verify" in w for w in warnings)
    assert any("no rate limit" in w for w in warnings)
    assert any("pid" in w and "params" in w for w in warnings)
