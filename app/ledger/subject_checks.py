"""What the subjects of a disclosure say about it: their stops of third-party provision and
their consents to the recipient, checked at request, at approval and again at release.

``consent`` needs each subject's live consent to this recipient and never overrides a
stop. ``law``, ``investigation_compelled`` and ``emergency_life_body_property`` (APPI
Art. 27(1)'s exceptions, which need no consent) go on despite a stop, and name the
subjects whose stop they overrode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.core.tx import Tx
from app.ledger import canonical
from app.ledger import subjects_repository as subjects
from app.ledger.errors import ConsentMissing, ProvisionStopped
from app.ledger.rules import OVERRIDES_STOP


@dataclass(frozen=True)
class SubjectsChecked:
    """What the subjects' say adds to a request and its entry."""

    # For ``consent``: each subject's consent (time and source), which the ledger entry
    # records (APPI Art. 29 / PPC rule 21); else None.
    consent: dict[str, dict[str, str]] | None
    # The subjects who stopped third-party provision and whose stop the basis overrides
    # (sorted); None when nobody had stopped.
    stop_overridden: list[str] | None


async def check_subjects(
    tx: Tx, *, subject_ids: Sequence[str], legal_basis: str, recipient: str
) -> SubjectsChecked:
    """Refuse stopped subjects (unless the basis needs no consent: law, investigation,
    emergency, which go on flagged) and, for ``consent``, missing consent."""
    stopped = await subjects.stopped_subjects(tx, subject_ids)
    if stopped and legal_basis not in OVERRIDES_STOP:
        raise ProvisionStopped(
            f"{len(stopped)} subject(s) stopped third-party provision; basis {legal_basis!r} "
            "does not override that",
            subject_ids=sorted(stopped),
        )
    overridden = sorted(stopped) or None
    if legal_basis != "consent":
        return SubjectsChecked(consent=None, stop_overridden=overridden)
    live = await subjects.live_consents(tx, subject_ids, recipient_key=recipient)
    missing = sorted(set(subject_ids) - set(live))
    if missing:
        raise ConsentMissing(
            f"{len(missing)} subject(s) have no live consent to this recipient",
            subject_ids=missing,
        )
    consent = {
        subject: {
            "granted_at": canonical.timestamp(live[subject].granted_at),
            "source": live[subject].source,
        }
        for subject in sorted(subject_ids)
    }
    return SubjectsChecked(consent=consent, stop_overridden=None)
