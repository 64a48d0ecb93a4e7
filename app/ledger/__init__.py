"""The disclosure ledger: request -> review -> approval -> release, recorded append-only.

Modules: ``workflow`` (the service functions), ``provision`` (the subjects' consent and
stop of third-party provision), ``chain`` (hashing and appending), ``signing`` (Ed25519
checkpoints), ``repository`` (every query), ``export`` and ``verify`` (offline-verifiable
exports and the verifier), ``retention`` (the purge), ``cli`` and ``routes``.
"""
