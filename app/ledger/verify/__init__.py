"""Walk the chain and report the first place it is broken, and what broke.

Works on the database (a read snapshot, keyset batches) and on an export file (JSON
Lines or CSV, streamed), in constant memory. What is checked, in seq order:

- signatures: every checkpoint against the trusted public keys (``bad-signature``);
- start: the first entry is seq 1 after 64 zeros, or follows the newest signed purge
  anchor (a complete walk only; a filtered export starts where it starts);
- order: seqs run on without gaps (``removed``) and never back (``reordered``); an
  entry whose prev_hash is another entry's hash, not its predecessor's, is ``reordered``;
- content: each entry's hash recomputed from its fields and prev_hash (``changed``);
- checkpoints: the chain's hash at each checkpoint's seq equals the signed head hash
  (``changed``: rewritten with recomputed hashes), and no checkpoint lies beyond the
  last entry (``truncated``);
- database only: the subject index agrees with each entry's subject ids (``index``);
- file only: the end record is present and its counts agree (``truncated``); every
  entry is under a signed checkpoint (``uncovered``); a filtered export is verified only
  against the filter asked for, and its entries match it (``filtered``);
- pins (``--witness``, ``--expect``): checkpoints a witness kept and heads an auditor
  pinned are held like the chain's own checkpoints: the chain reaches each one
  (``truncated``) and has its hash there (``changed``);
- database only: every released disclosure request has the entry it was released as
  (``unrecorded``).

The answer names the lowest broken position. Entries after the newest checkpoint can
be cut without a trace (nothing signed mentions them yet); the report says how far the
checkpoints reach.
"""

from __future__ import annotations

from app.ledger.verify.database import verify_database, verify_in_units
from app.ledger.verify.files import asked_filters, parse_public_keys, verify_file, verify_lines
from app.ledger.verify.report import Problem, Report
from app.ledger.verify.walk import Pins, expected_head

__all__ = [
    "Pins",
    "asked_filters",
    "expected_head",
    "Problem",
    "Report",
    "parse_public_keys",
    "verify_database",
    "verify_file",
    "verify_in_units",
    "verify_lines",
]
