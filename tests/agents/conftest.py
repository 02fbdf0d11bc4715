"""Hypothesis strategies for the agents' built-in messages, so property tests that draw every
registered message type (tests/axl/test_messages.py) draw valid ones instead of rejecting."""

from __future__ import annotations

from hypothesis import strategies as st

from agents import Advertise, FindProviders, Provider, Providers, Registered, Withdraw
from agents._directory import _SERVICE_PATTERN
from axl import Identity, PeerId

services = st.from_regex(_SERVICE_PATTERN, fullmatch=True)
names = st.text(max_size=128)
peers = st.binary(min_size=32, max_size=32).map(lambda seed: Identity.from_seed(seed).peer_id)
ttls = st.floats(min_value=0.001, max_value=86_400)

st.register_type_strategy(PeerId, peers)
st.register_type_strategy(
    Advertise, st.builds(Advertise, name=names, services=st.lists(services, max_size=32), ttl=ttls)
)
st.register_type_strategy(Withdraw, st.builds(Withdraw, services=st.lists(services, max_size=32)))
st.register_type_strategy(
    FindProviders, st.builds(FindProviders, service=services, limit=st.integers(1, 1000))
)
st.register_type_strategy(
    Provider, st.builds(Provider, peer=peers, name=names, expires_in=st.floats(0, 86_400))
)
st.register_type_strategy(
    Providers,
    st.builds(Providers, service=services, providers=st.lists(st.from_type(Provider), max_size=3)),
)
st.register_type_strategy(
    Registered, st.builds(Registered, services=st.lists(services, max_size=4), ttl=ttls)
)
