"""The ledger's refusals, each a clear 4xx problem: the workflow, the subjects, checkpoints."""

from __future__ import annotations

from app.core.errors import AppError, Forbidden, NotFound


class SelfApproval(Forbidden):
    slug = "disclosure-self-approval"
    title = "The requester of a disclosure may not approve, reject or release it"


class DependentApprover(Forbidden):
    slug = "disclosure-dependent-approver"
    title = (
        "The approver created or granted the requester's account, or the other way round: "
        "another privacy officer must review it"
    )


class RequestNotFound(NotFound):
    slug = "disclosure-not-found"
    title = "No such disclosure request"


class SubjectNotFound(NotFound):
    slug = "subject-not-found"
    title = "No such subscriber"


class WrongState(AppError):
    status = 409
    slug = "disclosure-wrong-state"
    title = "The disclosure request is not in a state that allows this step"


class AlreadyReleased(AppError):
    status = 409
    slug = "disclosure-already-released"
    title = "This disclosure was already released; a request is released once"


class ProvisionStopped(AppError):
    status = 409
    slug = "disclosure-provision-stopped"
    title = (
        "A subject asked to stop third-party provision; only `law`, "
        "`investigation_compelled` or `emergency_life_body_property` go on despite that"
    )


class ConsentMissing(AppError):
    status = 409
    slug = "disclosure-consent-missing"
    title = "A `consent` disclosure needs each subject's live consent to this recipient"


class SubjectGone(AppError):
    status = 409
    slug = "disclosure-subject-gone"
    title = "A subject of this request is no longer in the registry"


class EmptyLedger(AppError):
    status = 409
    slug = "ledger-empty"
    title = "The ledger has no entry to commit to yet"


class UnbackedEntry(AppError):
    status = 409
    slug = "ledger-entry-unbacked"
    title = (
        "An entry records a disclosure no released request was released as: no checkpoint "
        "is signed over it (the ledger may have been tampered with; run `smsreg ledger verify`)"
    )
    # The entry's seq, for an export that goes on without it (app.ledger.auditor).
    seq: int | None = None


class LedgerCut(AppError):
    status = 409
    slug = "ledger-cut"
    title = (
        "Entries the ledger had are missing (a released request's entry, or entries a "
        "checkpoint covers): no checkpoint is signed (run `smsreg ledger verify`)"
    )
    seq: int | None = None  # the first entry missing


class LedgerUncovered(AppError):
    status = 409
    slug = "ledger-uncovered"
    title = (
        "An entry that a scheduled checkpoint should have covered long ago is covered by "
        "none (checkpoints may have been removed): no checkpoint is signed until an "
        "operator checks it (`smsreg ledger verify`, then `smsreg ledger checkpoint "
        "--sign-uncovered`)"
    )
    seq: int | None = None  # the first entry uncovered


class LedgerRewritten(AppError):
    status = 409
    slug = "ledger-rewritten"
    title = (
        "The ledger holds another hash where the witness (SMSREG_LEDGER_WITNESS) holds a "
        "signed checkpoint: entries were rewritten; no checkpoint is signed (run "
        "`smsreg ledger verify`)"
    )
    seq: int | None = None  # the witnessed checkpoint's seq


# What stops a checkpoint from being signed over the head: an export then runs to the
# newest signed head and says what it held back (app.ledger.auditor).
UNSIGNABLE = (UnbackedEntry, LedgerCut, LedgerUncovered, LedgerRewritten)


class WitnessUnavailable(AppError):
    status = 503
    slug = "ledger-witness-unavailable"
    title = (
        "The ledger's witness (SMSREG_LEDGER_WITNESS) could not record a checkpoint: none was "
        "made (an operator must fix the witness)"
    )
