"""Load ``paramedic.yaml``, apply ``PARAMEDIC_*`` overrides and read the secrets the config names
(``resolve_secrets``): the only reader of the environment.

``PARAMEDIC_DATABASE=postgresql+psycopg://…`` overrides ``database``; nested keys use double
underscores (``PARAMEDIC_AUTOMATION__PAUSED=true``). Values are parsed as YAML scalars.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from paramedic.core.audit import AuditKey
from paramedic.core.config import Config
from paramedic.core.errors import ConfigError
from paramedic.core.loader import yaml_with_positions

PREFIX = "PARAMEDIC_"
_NOT_CONFIG = {
    "CONFIG",
    "TOKEN",
    "URL",
    "TEST_POSTGRES_URL",
    "REQUIRE_INTEGRATION",
    "WEBHOOK_SECRET",
    "AUDIT_KEY",
}


def config_path(explicit: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("PARAMEDIC_CONFIG"):
        return Path(env["PARAMEDIC_CONFIG"])
    default = Path("paramedic.yaml")
    return default if default.exists() else None


def _config_vars(env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """The config path each ``PARAMEDIC_*`` override sets → the variable's name."""
    out: dict[tuple[str, ...], str] = {}
    for key in env:
        if not key.startswith(PREFIX) or key[len(PREFIX) :] in _NOT_CONFIG or key.startswith(PREFIX + "TEST_"):
            continue
        out[tuple(key[len(PREFIX) :].lower().split("__"))] = key
    return out


def _overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, key in _config_vars(env).items():
        raw = env[key]
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # PARAMEDIC_X=1 and PARAMEDIC_X__Y=2: the nested one wins
                child = node[part] = {}
            node = child
        try:
            node[path[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[path[-1]] = raw
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            base[k] = _merge(dict(base[k]), v)
        else:
            base[k] = v
    return base


def _model_keys(loc: tuple[str, ...]) -> list[str]:
    """The keys the config model accepts at ``loc`` (for did-you-mean), best effort."""
    model: Any = Config
    for part in loc:
        if part.isdigit():
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        ann = fields[part].annotation
        inner = [a for c in (ann, *get_args(ann)) for a in (c, *get_args(c))]
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def describe_errors(
    exc: ValidationError,
    *,
    where: str,
    positions: Mapping[tuple[str | int, ...], tuple[int, int]] | None = None,
    env_vars: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """Every validation error of the config, one line each: ``FILE:LINE:COL: key: problem (hint)``,
    or ``environment PARAMEDIC_X__Y: ...`` for a value an override set, with did-you-mean. Lines are
    in file order, the environment's after."""
    lines: list[tuple[tuple[int, int], str]] = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        hint = ""
        var = next((env_vars[loc[:n]] for n in range(len(loc), 0, -1) if env_vars and loc[:n] in env_vars), None)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc[-1], _model_keys(loc[:-1]), n=1) if loc else []
            msg = f"unknown key {dotted}"
            if close and var:
                hint = f"did you mean {PREFIX}{'__'.join((*loc[:-1], close[0])).upper()}?"
            elif close:
                hint = f"did you mean {close[0]!r}?"
        elif "duration" in msg:
            hint = "durations look like 30s, 15m, 1h"
        order = (10**9, 0)
        if var is not None:
            head = f"environment {var}"
        elif positions is not None:
            at: tuple[str | int, ...] = tuple(int(p) if p.isdigit() else p for p in loc)
            while at and at not in positions:
                at = at[:-1]
            line, col = positions.get(at, (1, 1))
            head, order = f"{where}:{line}:{col}", (line, col)
        else:
            head = where
        text = msg if err["type"] == "extra_forbidden" else f"{dotted}: {msg}"
        lines.append((order, f"{head}: {text}" + (f" (hint: {hint})" if hint else "")))
    return "\n".join(line for _, line in sorted(lines, key=lambda pair: pair[0]))


def format_errors(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {loc}: {msg}" if err["type"] != "extra_forbidden" else f"{where}: unknown key {loc}")
    return "\n".join(lines)


def load_config(
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the config file (or defaults), apply environment and explicit overrides, validate."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    where = "defaults"
    positions: dict[tuple[str | int, ...], tuple[int, int]] | None = None
    if path is not None:
        where = str(path)
        try:
            loaded, positions = yaml_with_positions(path.read_text())
            loaded = loaded or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; create one or pass --config") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping of keys")
        data = loaded
        base = path.parent
        data["runbooks"] = [
            str(base / p) if not Path(p).is_absolute() else p for p in data.get("runbooks", ["runbooks/"])
        ]
        _relative_audit_paths(data, base)
    data = _merge(data, _overrides(env))
    if overrides:
        data = _merge(data, overrides)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, where=where, positions=positions, env_vars=_config_vars(env))) from None
    return resolve_secrets(config, env)


def _relative_audit_paths(data: dict[str, Any], base: Path) -> None:
    """The audit key file and checkpoint file are relative to the config file, like runbooks."""
    section = data.get("audit")
    if not isinstance(section, dict):
        return
    if isinstance(section.get("key_file"), str) and not Path(section["key_file"]).is_absolute():
        section["key_file"] = str(base / section["key_file"])
    cps = section.get("checkpoints")
    if isinstance(cps, dict) and isinstance(cps.get("file"), str) and not Path(cps["file"]).is_absolute():
        cps["file"] = str(base / cps["file"])


def read_audit_key(
    config: Config, *, key_file: str | None = None, env: Mapping[str, str] | None = None
) -> AuditKey | None:
    """The audit chain's key: ``key_file`` if given, else the config's ``audit.key_file`` or
    ``audit.key_env``; None when none is configured. The file holds the secret as text (``paramedic
    audit keygen`` writes 32 random bytes in hex); surrounding whitespace is ignored."""
    env = os.environ if env is None else env
    path = key_file or config.audit.key_file
    if path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the audit key file {path}: {exc.strerror or exc}") from None
        where = f"the audit key file {path}"
    elif config.audit.key_env:
        secret = env.get(config.audit.key_env, "").strip().encode()
        if not secret:
            raise ConfigError(f"audit.key_env names {config.audit.key_env}, which is not set or empty")
        where = f"the environment variable {config.audit.key_env}"
    else:
        return None
    try:
        return AuditKey(secret)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}; create one with `paramedic audit keygen FILE`") from None


def _read_secret(*, env_name: str | None, file_name: str | None, env: Mapping[str, str], where: str) -> str:
    if env_name:
        value = env.get(env_name, "")
        if not value:
            raise ConfigError(f"{where}: secret_env names {env_name}, which is not set or empty; export it")
        return value
    if file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: secret_file {file_name} cannot be read: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{where}: secret_file {file_name} is empty")
        return value
    return ""


def environment() -> Mapping[str, str]:
    """The process environment, for the secrets a config names by variable (sinks' ``*_env``),
    read at start-up by whoever builds from the config; nothing reads it per request."""
    return os.environ


def resolve_secrets(config: Config, env: Mapping[str, str] | None = None) -> Config:
    """The config with every secret it names (``*_env``, ``secret_file``) read, once, now: the
    webhook credentials, the session signing key and Slack's signing secret.

    The request path never reads the environment; a webhook secret that is named and missing is
    a ``ConfigError`` at start-up, not a 401 for every delivery later. Idempotent."""
    env = os.environ if env is None else env
    if config.slack is not None and config.slack.signing_secret is None:
        value = env.get(config.slack.signing_secret_env, "")
        # checked where Slack's endpoint is mounted (api.slack): only ``serve`` needs it
        slack = config.slack.model_copy(update={"signing_secret": SecretStr(value) if value else None})
        config = config.model_copy(update={"slack": slack})
    if config.auth is None:
        return config
    auth = config.auth
    creds = []
    for i, cred in enumerate(auth.webhooks):
        if cred.secret is None and (cred.secret_env or cred.secret_file):
            value = _read_secret(
                env_name=cred.secret_env, file_name=cred.secret_file, env=env, where=f"auth.webhooks[{i}]"
            )
            cred = cred.model_copy(update={"secret": SecretStr(value)})
        creds.append(cred)
    legacy = auth.webhook
    if legacy is not None and legacy.hmac_secret is None and legacy.hmac_secret_env:
        value = env.get(legacy.hmac_secret_env, "")
        # kept lenient as before: an unset variable disables the shared HMAC (the other ways still work)
        legacy = legacy.model_copy(update={"hmac_secret": SecretStr(value) if value else None})
    session = auth.session_secret
    if session is None and auth.session_secret_env:
        session = SecretStr(env.get(auth.session_secret_env, ""))  # its length is checked by api.session
    update = {"webhooks": creds, "webhook": legacy, "session_secret": session}
    return config.model_copy(update={"auth": auth.model_copy(update=update)})


SECRET_SUFFIXES = ("_env", "_file")


def resolve_step_secrets(value: Any, *, env: Mapping[str, str] | None = None) -> tuple[Any, tuple[str, ...]]:
    """Resolve secret references inside a step's arguments, at execution only: in any mapping, a
    key ``NAME_env: VAR`` becomes ``NAME: <the variable's value>`` and ``NAME_file: PATH`` becomes
    ``NAME: <the file's content, stripped>``. The plan, the audit trail, the API and the UI only
    ever hold the reference. Returns the resolved value and the secrets, so callers can mask them
    in whatever an executor says back. A missing variable or file fails the step."""
    env = os.environ if env is None else env
    found: list[str] = []

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            out: dict[str, Any] = {}
            for key, item in node.items():
                name = str(key)
                suffix = next((x for x in SECRET_SUFFIXES if name.endswith(x) and len(name) > len(x)), None)
                if suffix is None or not isinstance(item, str):
                    out[name] = walk(item)
                    continue
                secret = _secret(name, item, file=suffix == "_file", env=env)
                found.append(secret)
                out[name[: -len(suffix)]] = secret
            return out
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    resolved = walk(value)
    return resolved, tuple(found)


def _secret(key: str, ref: str, *, file: bool, env: Mapping[str, str]) -> str:
    from paramedic.core.errors import PermanentError

    if file:
        try:
            secret = Path(ref).read_text().strip()
        except OSError as exc:
            raise PermanentError(
                f"secret {key}: cannot read {ref}: {exc.strerror or exc}", reason="missing_secret"
            ) from None
    else:
        secret = env.get(ref, "")
    if not secret:
        where = f"file {ref} is empty" if file else f"environment variable {ref} is not set or empty"
        raise PermanentError(f"secret {key}: {where}", reason="missing_secret")
    return secret


def mask_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every resolved secret replaced, for what executors say back."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
