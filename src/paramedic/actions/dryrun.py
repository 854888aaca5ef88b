"""The dry-run executor: one more implementation of ``Executor`` that changes nothing.

It wraps a real executor and turns ``execute`` into that executor's own description of the
change, so ``paramedic test`` and ``observe`` mode show exactly what would happen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, Executor, TargetState


class DryRunExecutor:
    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    def actions(self) -> Sequence[ActionSpec]:
        return self._inner.actions()

    async def execute(self, request: ActionRequest) -> ActionResult:
        return ActionResult(summary=await self._inner.describe(request), changed=False)

    async def describe(self, request: ActionRequest) -> str:
        return await self._inner.describe(request)

    async def read_state(self, request: ActionRequest) -> TargetState:
        return await self._inner.read_state(request)

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return await self._inner.known_targets(scope)
