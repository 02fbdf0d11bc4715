"""A node's blob service: its store, the server of offered blobs and the fetcher."""

from __future__ import annotations

from collections.abc import Iterable

import trio

from ._blob_fetch import BlobFetcher
from ._blob_id import BlobId
from ._blob_serve import BlobConfig, BlobServer, refuse_all
from ._blobs import BlobStore
from ._errors import BlobError
from ._identity import PeerId
from ._stats import Counters
from ._transport import BulkTransport


class BlobNode:
    """Serves offered blobs on the transport's bulk streams and fetches blobs into the store."""

    def __init__(
        self, store: BlobStore, transport: object, config: BlobConfig, stats: Counters
    ) -> None:
        self.store = store
        self.config = config
        self.server = BlobServer(store, config, stats)
        self._bulk = transport if isinstance(transport, BulkTransport) else None
        self.fetcher = (
            BlobFetcher(store, self._bulk, config, stats) if self._bulk is not None else None
        )

    async def serve(self) -> None:
        """Answer inbound bulk streams and close the streams of finished fetches until the
        transport closes (returns at once without bulk support)."""
        if self._bulk is None:
            return
        async with trio.open_nursery() as nursery:
            if self.fetcher is not None:
                nursery.start_soon(self.fetcher.close_streams)
            await self.server.serve(self._bulk)
            nursery.cancel_scope.cancel()

    async def fetch(
        self, blob_id: BlobId, from_peers: Iterable[PeerId], *, timeout: float | None = None
    ) -> BlobId:
        if self.fetcher is None:
            raise BlobError("this transport cannot carry bulk streams")
        return await self.fetcher.fetch(blob_id, from_peers, timeout=timeout)

    def offer(self, blob_id: BlobId, to: Iterable[PeerId] | None = None) -> None:
        self.server.offer(blob_id, to)

    def withdraw(self, blob_id: BlobId) -> None:
        self.server.withdraw(blob_id)


async def refuse_bulk(transport: object) -> None:
    """Without a store: refuse every inbound bulk stream at once (returns at once when the
    transport has no bulk streams)."""
    if isinstance(transport, BulkTransport):
        await refuse_all(transport)
