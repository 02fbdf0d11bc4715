"""Hypothesis strategies for axl types."""

from __future__ import annotations

from hypothesis import strategies as st

from axl import Identity, PeerId

identities = st.binary(min_size=32, max_size=32).map(Identity.from_seed)
peer_ids = identities.map(lambda identity: identity.peer_id)

st.register_type_strategy(PeerId, peer_ids)
