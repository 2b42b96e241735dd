"""The money-moving operations, by request type: the one list to extend.

Adding an operation is one module (its request type, :func:`needs` and pure :func:`decide`,
see :class:`~penny.services.payments.batch.OperationSpec`) plus one entry here; the FPS door
adds its action to :data:`penny.fps.actions.table.ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from penny.services.payments import (
    cancel,
    fund,
    pay,
    refund,
    reserve,
    settle,
    settle_reserve,
    withdraw,
    write_off,
)
from penny.services.payments.batch import OperationSpec
from penny.services.payments.requests import PaymentRequest

OPERATIONS: Final[Mapping[type[PaymentRequest], OperationSpec[Any]]] = {
    spec.request_type: spec
    for spec in (
        pay.SPEC,
        fund.SPEC,
        settle.SPEC,
        write_off.SPEC,
        refund.SPEC,
        withdraw.SPEC,
        reserve.SPEC,
        settle_reserve.SPEC,
        cancel.SPEC,
    )
}


def spec_of(request: PaymentRequest) -> OperationSpec[Any]:
    """The operation of ``request`` (a bug when its type is not registered)."""
    spec = OPERATIONS.get(type(request))
    assert spec is not None, f"no operation for {type(request).__name__}"
    return spec
