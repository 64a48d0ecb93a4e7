"""Every query of the key rings: rows still on an older key, rewritten one guarded row at a
time (rewrites.py), and what still uses each key (usage.py).

A key ring is a storage concern that cuts across areas: the phone key seals numbers in
the registry and in verifications (and staff TOTP secrets), the index key makes the
blind indexes of subscribers, verifications and pumping blocks, the token key hashes
API keys and staff sessions. Finding what still needs a key, and rewriting it under
the active one, reads and writes those tables as stored bytes and key ids, whatever
the owning area does with them; so those queries are the key ring's own and live here,
not in the areas' repositories.

Every rewrite is a compare-and-set: ``WHERE id = :id`` and the old key id (and, where
the associated data depends on it, the old index) as read. A row a running service
changed in between is left alone (it was written under the active key anyway), never
overwritten with stale data. Rows are walked in id order after a cursor, so a row that
cannot be rewritten is passed over, not retried for ever; what is left after a run is
still "every row not on the active key", which is what the next run picks up.
"""

from app.keys.repository.rewrites import (
    Block,
    Sealed,
    block_batch,
    index_batch,
    index_remaining,
    phone_batch,
    phone_remaining,
    reindex_block,
    reindex_verification,
    rewrite_subscriber,
    rewrite_verification_phone,
    subscriber_holding,
)
from app.keys.repository.tables import PHONE_TABLES, TOKEN_TABLES
from app.keys.repository.usage import Usage, usage

__all__ = [
    "PHONE_TABLES",
    "TOKEN_TABLES",
    "Block",
    "Sealed",
    "Usage",
    "block_batch",
    "index_batch",
    "index_remaining",
    "phone_batch",
    "phone_remaining",
    "reindex_block",
    "reindex_verification",
    "rewrite_subscriber",
    "rewrite_verification_phone",
    "subscriber_holding",
    "usage",
]
