"""The disclosure ledger: request -> review -> approval -> release, recorded append-only.

Modules: ``workflow`` and ``package`` (the disclosure steps and what a release hands
over), ``provision`` (the subjects' consent to and stop of third-party provision),
``chain``, ``canonical`` and ``signing`` (hashing, appending, Ed25519 checkpoints in
``checkpoints``), ``export`` and ``verify`` (offline-verifiable exports and the
verifier), ``retention`` (the purge), ``auditor`` (what the auditors' routes call),
the repositories, ``schemas``/``audit_schemas``, ``routes``/``provision_routes`` and
``cli``.
"""
