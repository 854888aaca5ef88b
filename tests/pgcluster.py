"""Old name of ``tests.support.postgres`` and ``tests.support.services``: kept only while tests
still import it; new code imports from ``tests.support``."""

from __future__ import annotations

from tests.support import REPO
from tests.support.postgres import PrivateCluster, TcpProxy, fresh_schema, require_pg_url, with_schema
from tests.support.services import Haproxy, alertmanager_pair, replicas
from tests.support.services import Serve as Replica
from tests.support.services import serve_config as write_replica_config

__all__ = [
    "REPO",
    "Haproxy",
    "PrivateCluster",
    "Replica",
    "TcpProxy",
    "alertmanager_pair",
    "fresh_schema",
    "replicas",
    "require_pg_url",
    "with_schema",
    "write_replica_config",
]


def kill_pids(_path: object) -> None:
    """No longer needed: stopping a replica ends its detached step processes too."""
