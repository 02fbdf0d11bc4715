"""Identity registry: AXL peer id <-> chain address, signed by the peer key."""

from __future__ import annotations

import pytest

from axl import Identity, verify_signature
from coordination import InvalidIdentityBinding, binding_message

from .conftest import Env
from .helpers import reverts


def test_bind_lookup_unbind(env: Env) -> None:
    identity = Identity.from_seed(b"\x07" * 32)
    receipt = env.solver.bind_identity(identity)
    assert env.admin.peer_of(env.solver.address) == identity.peer_id
    assert env.admin.account_of(identity.peer_id) == env.solver.address
    (bound,) = receipt.named("IdentityBound")
    message = binding_message(env.admin.chain_id, env.solver.address)
    assert verify_signature(identity.peer_id, bound["signature"], message)
    with reverts("AlreadyBound"):
        env.solver.bind_identity(Identity.generate())
    # The key holder may bind a second account; lookups return the earliest still bound.
    env.solver2.bind_identity(identity)
    assert env.admin.account_of(identity.peer_id) == env.solver.address
    env.solver.unbind_identity()
    assert env.admin.account_of(identity.peer_id) == env.solver2.address
    env.solver2.unbind_identity()
    assert env.admin.peer_of(env.solver.address) is None
    assert env.admin.account_of(identity.peer_id) is None
    with reverts("NotBound"):
        env.solver.unbind_identity()


def test_binding_message_matches_the_contract(env: Env) -> None:
    registry = env.admin.contract("IdentityRegistry").functions
    on_chain = registry.bindingMessage(env.solver.address).call()
    assert bytes(on_chain) == binding_message(env.admin.chain_id, env.solver.address)


def test_bad_signature_is_refused_before_sending(env: Env) -> None:
    identity = Identity.generate()
    nonce = env.solver.w3.eth.get_transaction_count(env.solver.address)
    wrong_chain = binding_message(env.admin.chain_id + 1, env.solver.address)
    for signature in (identity.sign(wrong_chain), b"\x00" * 64, b"short"):
        with pytest.raises(InvalidIdentityBinding):
            env.solver.bind_identity_signature(identity.peer_id, signature)
    other_account = binding_message(env.admin.chain_id, env.solver2.address)
    with pytest.raises(InvalidIdentityBinding):
        env.solver.bind_identity_signature(identity.peer_id, identity.sign(other_account))
    assert env.solver.w3.eth.get_transaction_count(env.solver.address) == nonce
    assert env.admin.peer_of(env.solver.address) is None


def test_contract_checks_shape(env: Env) -> None:
    registry = env.solver.contract("IdentityRegistry").functions
    with reverts("ZeroPeerKey"):
        env.solver.transact(registry.bind(b"\x00" * 32, b"\x01" * 64))
    with reverts("BadSignatureLength"):
        env.solver.transact(registry.bind(b"\x01" * 32, b"\x01" * 63))
