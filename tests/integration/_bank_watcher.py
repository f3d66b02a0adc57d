"""A second process holding a `BankIndex` (as a relay does): it prints one JSON line each
time its answer for one query hash changes. Run: python -m tests.integration._bank_watcher
DATABASE_URL HEX."""

from __future__ import annotations

import asyncio
import json
import sys

from covey.safety.images import PdqHash
from covey.server.services.bank_index import BankIndex
from covey.server.storage import Repository, create_engine, upgrade_to_head
from covey.server.storage.banks import BankStorage


async def main(database_url: str, query: str) -> None:
    engine = create_engine(database_url)
    await upgrade_to_head(engine)
    repo = Repository(engine)
    repo.start()
    index = BankIndex(BankStorage(repo), poll_interval_s=0.5)
    index.start()
    last: object = "unset"
    try:
        while True:
            match = await index.match([PdqHash.from_hex(query)])
            answer = None if match is None else {"bank": match.entry.bank,
                                                 "distance": match.distance}
            if answer != last:
                print(json.dumps({"match": answer, "version": index.version}), flush=True)
                last = answer
            await asyncio.sleep(0.1)
    finally:
        await index.stop()
        await repo.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
