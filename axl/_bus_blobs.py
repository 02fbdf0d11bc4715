"""The bus's blob verbs, delegated to its :class:`~axl._blob_node.BlobNode`."""

from __future__ import annotations

from collections.abc import Iterable

from ._blob_id import BlobId
from ._blob_node import BlobNode
from ._bus_base import BusBase
from ._errors import BlobError
from ._identity import PeerId


class BlobsMixin(BusBase):
    """``fetch``, ``offer`` and ``withdraw``."""

    def _blob_node(self) -> BlobNode:
        if self.blobs is None:
            raise BlobError("this bus has no blob store (open_bus(..., blobs=BlobStore(...)))")
        return self.blobs

    async def fetch(
        self, blob_id: BlobId, *, from_peers: Iterable[PeerId], timeout: float | None = None
    ) -> BlobId:
        """Fetch a blob from its holders into this bus's store (see ``docs/blobs.md``).

        Raises :class:`BlobUnavailable`, :class:`StoreFull`, or :class:`BlobError` without a
        store or bulk-capable transport.
        """
        return await self._blob_node().fetch(blob_id, from_peers, timeout=timeout)

    def offer(self, blob_id: BlobId, *, to: Iterable[PeerId] | None = None) -> None:
        """Serve a stored blob to peers that fetch it (all, or only ``to``); raises
        :class:`BlobNotHeld`."""
        self._blob_node().offer(blob_id, to)

    def withdraw(self, blob_id: BlobId) -> None:
        """Stop serving a blob."""
        self._blob_node().withdraw(blob_id)
