"""Identity bindings and governance proposals of ``Chain``."""

from __future__ import annotations

from collections.abc import Mapping

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from axl import Identity, PeerId, verify_signature

from ._economics import binding_message
from ._errors import InvalidIdentityBinding
from ._events import ChainEvent
from ._market import MarketMixin
from ._types import PARAMETERS, Receipt, with_value


class GovernanceMixin(MarketMixin):
    """Identity claims (verified by every reader) and timelocked parameter governance."""

    # --- identity -----------------------------------------------------------------------------

    def bind_identity(self, identity: Identity) -> Receipt[None]:
        """Bind ``identity``'s peer id to this account, signing (address, chain id) with it."""
        message = binding_message(self.chain_id, self.address)
        return self.bind_identity_signature(identity.peer_id, identity.sign(message))

    def bind_identity_signature(self, peer: PeerId, signature: bytes) -> Receipt[None]:
        """Bind ``peer`` with a signature made elsewhere. Verifies it first and raises
        :class:`InvalidIdentityBinding` (sending nothing) when it does not verify."""
        message = binding_message(self.chain_id, self.address)
        if len(signature) != 64 or not verify_signature(peer, signature, message):
            raise InvalidIdentityBinding(
                f"signature does not bind {peer} to {self.address} on chain {self.chain_id}"
            )
        fn = self.contract("IdentityRegistry").functions.bind(peer.public_key, signature)
        return self.transact(fn)

    def unbind_identity(self) -> Receipt[None]:
        """Remove this account's peer binding."""
        return self.transact(self.contract("IdentityRegistry").functions.unbind())

    def _bindings(self, account: str | None, key: bytes | None) -> list[ChainEvent]:
        registry = self.contract("IdentityRegistry")
        topic0 = "0x" + bytes(keccak(text="IdentityBound(address,bytes32,bytes)")).hex()
        account_topic = (
            None if account is None else "0x" + bytes.fromhex(account[2:]).rjust(32, b"\0").hex()
        )
        key_topic = None if key is None else "0x" + key.hex()
        query = {
            "fromBlock": self.address_book.block_number,
            "toBlock": "latest",
            "address": registry.address,
            "topics": [topic0, account_topic, key_topic],
        }
        logs = self._read(lambda: self._conn.w3.eth.get_logs(query))
        return [e for e in (self.decode_log(log) for log in logs) if e is not None]

    def _valid(self, event: ChainEvent) -> bool:
        peer = PeerId.from_public_key(bytes(event["peerKey"]))
        message = binding_message(self.chain_id, event["account"])
        signature = bytes(event["signature"])
        return len(signature) == 64 and verify_signature(peer, signature, message)

    def peer_of(self, address: str | None = None) -> PeerId | None:
        """The AXL peer id bound to ``address`` (default: this account), or None. Only a
        binding whose Ed25519 signature verifies counts (a squatter's claim reads as None)."""
        who = to_checksum_address(address or self.address)
        key = self._peer_key(who)
        if key == bytes(32):
            return None
        claims = self._bindings(who, key)
        return PeerId.from_public_key(key) if claims and self._valid(claims[-1]) else None

    def account_of(self, peer: PeerId) -> str | None:
        """The chain address bound to ``peer`` by a claim its key signed and that is still
        current (the earliest such), or None: a squatter's unsigned claim is never returned."""
        for event in self._bindings(None, peer.public_key):
            account = str(event["account"])
            if self._peer_key(account) == peer.public_key and self._valid(event):
                return account
        return None

    # --- governance ---------------------------------------------------------------------------

    def _proposal(self, changes: Mapping[str, int]) -> tuple[list[str], list[int], list[bytes]]:
        targets, values, calldatas = [], [], []
        for name, value in changes.items():
            if name not in PARAMETERS:
                raise ValueError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
            contract_name, setter, lead = PARAMETERS[name]
            contract = self.contract(contract_name)
            data = contract.encode_abi(setter, args=[*lead, value])
            targets.append(contract.address)
            values.append(0)
            calldatas.append(bytes.fromhex(data.removeprefix("0x")))
        return targets, values, calldatas

    def propose(self, changes: Mapping[str, int], description: str) -> Receipt[int]:
        """Propose parameter changes (names in ``PARAMETERS``); the value is the proposal id.
        Needs at least the proposal threshold of delegated votes."""
        targets, values, calldatas = self._proposal(changes)
        fn = self.contract("AXLGovernor").functions.propose(targets, values, calldatas, description)
        receipt = self.transact(fn)
        return with_value(receipt, int(receipt.named("ProposalCreated")[0]["proposalId"]))

    def cast_vote(self, proposal_id: int, support: int = 1) -> Receipt[None]:
        """Vote on a proposal: 0 against, 1 for, 2 abstain."""
        fn = self.contract("AXLGovernor").functions.castVote(proposal_id, support)
        return self.transact(fn)

    def queue(self, changes: Mapping[str, int], description: str) -> Receipt[None]:
        """Queue a succeeded proposal in the timelock (same changes and description); it can
        execute once the timelock delay has passed."""
        targets, values, calldatas = self._proposal(changes)
        digest = bytes(keccak(text=description))
        fn = self.contract("AXLGovernor").functions.queue(targets, values, calldatas, digest)
        return self.transact(fn)

    def execute(self, changes: Mapping[str, int], description: str) -> Receipt[None]:
        """Execute a queued proposal after the timelock delay (anyone)."""
        targets, values, calldatas = self._proposal(changes)
        digest = bytes(keccak(text=description))
        fn = self.contract("AXLGovernor").functions.execute(targets, values, calldatas, digest)
        return self.transact(fn)
