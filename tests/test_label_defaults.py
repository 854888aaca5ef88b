"""The default label pattern refuses option and authority injection, and a URL-valued parameter
keeps the host its runbook fixed. At 753e177 ``--server=https://x:6443``, ``-rf``,
``../../etc/shadow`` and ``a@b`` passed the default, and ``a@b`` sent an http.request elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paramedic.core.errors import TemplateError
from paramedic.core.plan import build_plan
from paramedic.core.runbooks import Runbook
from paramedic.core.templating import DEFAULT_PATTERN, check_url
from tests.test_templating import alert


def book(*, with_: dict[str, Any], params: dict[str, Any] | None = None, verify: Any = None) -> Runbook:
    data: dict[str, Any] = {
        "name": "hook",
        "owner": "team",
        "match": {"alertname": "WorkerHung"},
        "target": "{{ labels.instance }}",
        "steps": [{"action": "http.request", "with": with_}],
        "params": params or {},
    }
    if verify is not None:
        data["verify"] = verify
    return Runbook.model_validate(data)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param("--server=https://x:6443", "starts with '-'", id="long-option"),
        pytest.param("-rf", "starts with '-'", id="short-option"),
        pytest.param("../../etc/shadow", "contains '..'", id="traversal"),
        pytest.param("/etc/shadow", "starts with '/'", id="absolute-path"),
        pytest.param("a@b", "contains '@'", id="authority"),
        pytest.param("web 1", "does not match", id="space"),
        pytest.param("web\t1", "does not match", id="tab"),
        pytest.param("web\x1b[2J", "does not match", id="escape"),
    ],
)
def test_the_default_refuses_injection(value: str, why: str) -> None:
    runbook = book(with_={"url": "http://10.0.0.1/hook", "json": {"program": "{{ labels.program }}"}})
    with pytest.raises(TemplateError, match="does not match pattern") as err:
        build_plan(runbook, alert(instance="10.0.0.1:80", program=value))
    assert why in str(err.value)


@pytest.mark.parametrize("value", ["web:web-1", "web/s1", "10.0.0.1:8080", "payments-worker_01", "a.b.c", "k=v,x+y"])
def test_the_default_keeps_ordinary_names(value: str) -> None:
    runbook = book(with_={"url": "http://10.0.0.1/hook", "json": {"program": "{{ labels.program }}"}})
    plan = build_plan(runbook, alert(instance="10.0.0.1:80", program=value))
    assert plan.steps[0].args["json"] == {"program": value}


@pytest.mark.parametrize(
    ("template", "value"),
    [
        pytest.param("http://{{ labels.host }}/hook", "a@evil.example", id="user-part-moves-the-host"),
        pytest.param("http://{{ labels.host }}/hook", "evil.example/x?", id="path-in-the-host"),
        pytest.param("http://{{ labels.host }}/hook", "evil.example#", id="fragment-in-the-host"),
        pytest.param("http://api{{ labels.host }}/hook", ".evil.example@x", id="suffix-with-user-part"),
        pytest.param("{{ labels.host }}/hook", "http://evil.example", id="scheme-from-a-label"),
    ],
)
def test_a_url_keeps_the_host_the_runbook_fixed(template: str, value: str) -> None:
    """Even with a permissive params pattern, a label cannot move an http.request to another host."""
    runbook = book(with_={"url": template}, params={"host": {"pattern": ".*"}})
    with pytest.raises(TemplateError, match="url"):
        build_plan(runbook, alert(instance="10.0.0.1:80", host=value))


def test_a_literal_host_stays_whatever_the_path_label_says() -> None:
    runbook = book(with_={"url": "http://10.0.0.1:9/{{ labels.path }}"}, params={"path": {"pattern": ".*"}})
    plan = build_plan(runbook, alert(instance="10.0.0.1:80", path="@evil.example/x"))
    assert plan.steps[0].args["url"] == "http://10.0.0.1:9/@evil.example/x"


def test_the_verify_url_is_checked_too() -> None:
    runbook = book(
        with_={"url": "http://10.0.0.1/hook"},
        params={"instance": {"pattern": ".*"}},
        verify={"http": {"url": "http://{{ labels.instance }}/healthz"}},
    )
    with pytest.raises(TemplateError, match="verify url"):
        build_plan(runbook, alert(instance="u:p@evil.example"))


@given(st.text(min_size=1, max_size=40))
def test_no_value_the_default_accepts_starts_an_option_or_leaves_its_directory(value: str) -> None:
    import re

    if re.fullmatch(DEFAULT_PATTERN, value):
        assert not value.startswith(("-", "/"))
        assert ".." not in value
        assert "@" not in value
        assert not any(c.isspace() or ord(c) < 32 for c in value)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-:@/?#[]%", min_size=1, max_size=30))
def test_a_templated_host_is_always_a_plain_host(value: str) -> None:
    from urllib.parse import urlsplit

    rendered = f"http://{value}/hook"
    try:
        check_url("http://{{ labels.host }}/hook", rendered, render=lambda _: value)
    except TemplateError:
        return
    parts = urlsplit(rendered)
    assert parts.username is None
    assert parts.netloc == value
    assert parts.path == "/hook"
