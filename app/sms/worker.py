"""The outbox worker: in the service process by default, or as `smsreg worker`.

It claims a batch of due messages under a lease, renders them, and sends them a few at a
time (``outbox_concurrency``). Each group is taken for sending, handed to the carrier,
and each outcome recorded as soon as it is known, before anything else happens to its
message, each step one fenced statement (app.sms.outbox), so a crash can repeat
nothing: a message whose send may have gone out and whose outcome was lost is settled
as ``unknown``, never sent again. While
it works, the worker renews the lease of what it holds. Asked to stop, it claims
nothing more, lets the sends in flight finish and record, and gives back at once what
it had claimed but not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import anyio
import anyio.to_thread

from app.audit.events import Tag
from app.core.context import Context
from app.core.db import Database
from app.core.metrics import SMS_OUTCOMES
from app.core.tx import Tx
from app.core.unavailable import database_unavailable
from app.sms import outbox
from app.sms.base import SendError, SendResult, SmsSender
from app.sms.outbox import CAMPAIGN, Claimed, Outcome, Outgoing, Renderer

log = logging.getLogger("smsreg.outbox")
# How often a failed outcome write is tried again, and after how long; then it is given
# up: the message stays marked as handed over, and ends as unknown when its lease runs out.
RECORD_RETRIES = (0.1, 0.5, 1.0, 2.0, 5.0)
# Messages a database error kept from being taken for sending are claimed again after this.
BLIP_RETRY_SECONDS = 1.0


# What becomes of a number whose recipient told the carrier to stop (SendError.opted_out):
# given the number, in a transaction of its own after the outcome is recorded.
OnOptedOut = Callable[[Tx, Context, str], Awaitable[object]]


class OutboxWorker:
    """Drains the outbox; see the module docstring."""

    def __init__(
        self,
        db: Database,
        ctx: Context,
        sender: SmsSender,
        renderers: Mapping[str, Renderer],
        *,
        on_opted_out: OnOptedOut | None = None,
    ) -> None:
        s = ctx.settings
        self.db = db
        self.ctx = ctx
        self.sender = sender
        self.renderers = renderers
        self.on_opted_out = on_opted_out
        self.batch = s.outbox_batch
        self.concurrency = s.outbox_concurrency
        self.lease = dt.timedelta(seconds=s.outbox_lease_seconds)
        self.max_delay = s.outbox_retry_max_delay_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._held: dict[str, Claimed] = {}  # claimed by this worker, not yet settled

    def kick(self) -> None:
        """Wake the worker: something was just queued."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop claiming; :meth:`run_forever` returns once the sends in flight are done.
        Safe to call from a signal handler."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stopping.is_set()

    async def drain(self, *, whole: bool = True) -> int:
        """Send everything due now; return how many messages were claimed.

        With ``whole=False`` (the in-process worker), stop after a batch that was not
        full when a kick came in meanwhile: what came due is left to the next batch,
        after the linger, so that batches stay full under load.
        """
        handled = 0
        while not self.stopping:
            claimed, batch = await self._claim()
            if not claimed:
                return handled
            try:
                await self._send_all(batch)
            finally:
                await self._give_back()
            handled += claimed
            if not whole and claimed < self.batch and self._wake.is_set():
                return handled
        return handled

    async def _claim(self) -> tuple[int, list[Outgoing]]:
        now = self.ctx.clock.now()
        async with self.db.transaction() as tx:
            claimed = await outbox.claim(tx, now=now, lease=self.lease, limit=self.batch)
        outgoing: list[Outgoing] = []
        try:
            async with self.db.transaction() as tx:
                expired: list[Claimed] = []
                for kind, renderer in self.renderers.items():
                    mine = [message for message in claimed if message.kind == kind]
                    if mine:
                        rendered = await renderer.render(tx, self.ctx, mine, now=now)
                        outgoing += rendered.outgoing
                        expired += rendered.expired
                await outbox.expire(tx, expired, now=now)
        except BaseException:
            # Not rendered: give the batch back now rather than when its lease runs out.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await outbox.release(self.db, claimed)
            raise
        # A kind nothing here renders stays claimed until its lease runs out.
        self._held.update((item.message.id, item.message) for item in outgoing)
        return len(claimed), outgoing

    async def _send_all(self, batch: list[Outgoing]) -> None:
        limiter = anyio.CapacityLimiter(self.concurrency)
        unwanted: list[Claimed] = []
        async with asyncio.TaskGroup() as group:
            heartbeat = group.create_task(self._heartbeat())
            for start in range(0, len(batch), self.concurrency):
                if self.stopping:
                    break  # what was not started is given back
                await self._send_group(batch[start : start + self.concurrency], limiter, unwanted)
            heartbeat.cancel()
        if unwanted:
            await self._settle_unwanted(unwanted)

    async def _send_group(
        self, group: list[Outgoing], limiter: anyio.CapacityLimiter, unwanted: list[Claimed]
    ) -> None:
        """Take a few messages for sending (one statement per kind), send them at once, and
        record each outcome as soon as it is known: whatever has come back when a send
        finishes is written in one statement, so a slow answer holds back no other."""
        now = self.ctx.clock.now()
        taken: set[str] = set()
        blipped: list[Claimed] = []
        for kind, renderer in self.renderers.items():
            mine = [item.message for item in group if item.message.kind == kind]
            try:
                taken |= await outbox.start_sending(
                    self.db, mine, wanted=renderer.wanted, now=now, lease=self.lease
                )
            except Exception:  # a database blip: not taken, so never sent twice
                log.warning("sms not taken for sending", extra={"messages": len(mine)})
                blipped += mine
                continue  # what another kind's statement took is still sent
        if blipped:
            await self._retry_soon(blipped, now)
        retried = {message.id for message in blipped}
        sending = [item for item in group if item.message.id in taken]
        # No longer this worker's, expired or no longer wanted: never sent.
        unwanted += [
            item.message
            for item in group
            if item.message.id not in taken and item.message.id not in retried
        ]
        pending = {asyncio.ensure_future(self._answer(item, limiter)) for item in sending}
        numbers = {item.message.id: item.to for item in sending}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                outcomes = [task.result() for task in done]
                await self._record(outcomes)
                await self._opted_out(
                    [numbers[m.id] for m, outcome in outcomes if outcome.details.get("opted_out")]
                )
        finally:
            for task in pending:  # only when cancelled: their claims run out as unknown
                task.cancel()

    async def _answer(
        self, item: Outgoing, limiter: anyio.CapacityLimiter
    ) -> tuple[Claimed, Outcome]:
        return item.message, await self._send(item, limiter)

    async def _send(self, item: Outgoing, limiter: anyio.CapacityLimiter) -> Outcome:
        now = self.ctx.clock.now
        message = item.message
        # Delivered later than its expiry (a code's, or a campaign message's delivery
        # window), it is no use: the carrier may drop it from its queue then.
        valid_for = max(1, int((message.expires_at - now()).total_seconds()))

        def send() -> SendResult:
            return self.sender.send(
                to=item.to,
                body=item.body,
                reference=message.id,
                valid_for=valid_for,
                bulk=message.kind == CAMPAIGN,
            )

        try:
            if self.sender.blocking:
                result = await anyio.to_thread.run_sync(send, limiter=limiter)
            else:
                result = send()
        except SendError as error:
            # The carrier's error code joined to its name ("twilio_21211"): the logs mask
            # a bare run of digits as if it were a code sent by SMS, and this one is what
            # tells an invalid number from an unsubscribed one or bad credentials.
            said = f"{self.sender.name}_{error.code or 'none'}"
            log.warning(
                "sms send failed",
                extra={
                    "message_id": item.message.id,
                    "carrier_error": said,
                    "unknown": error.unknown,
                },
            )
            return self._failure(item.message, error, now())
        return _sent(result)

    def _failure(self, message: Claimed, error: SendError, now: dt.datetime) -> Outcome:
        details: dict[str, object] = {"code": error.code, "permanent": error.permanent}
        if error.opted_out:
            details["opted_out"] = True
        if error.unknown:
            return Outcome("unknown", Tag.SMS_UNKNOWN, details, error_code=error.code)
        if error.permanent:
            return Outcome("failed", Tag.SMS_FAILED, details, error_code=error.code)
        # Backoff with jitter, at most max_delay apart: a message is retried until it
        # expires (a code after its validity), however long the carrier is away.
        delay = min(2.0**message.attempts, self.max_delay) * (0.5 + random.random() / 2)  # noqa: S311
        return Outcome(
            "pending",
            None,
            details,
            error_code=error.code,
            next_attempt_at=now + dt.timedelta(seconds=delay),
        )

    async def _record(self, outcomes: list[tuple[Claimed, Outcome]]) -> None:
        if not outcomes:
            return
        for _, outcome in outcomes:
            SMS_OUTCOMES.labels(
                self.sender.name,
                "retry" if outcome.status == "pending" else outcome.status,
                _error_class(outcome),
            ).inc()
        for pause in (0.0, *RECORD_RETRIES):
            if pause:
                await asyncio.sleep(pause)
            try:
                recorded = await outbox.record(self.db, outcomes, now=self.ctx.clock.now())
            except Exception as exc:  # a database blip: try again, never send again
                log.warning(
                    "sms outcomes write failed",
                    extra={"messages": len(outcomes), "error_type": type(exc).__name__},
                )
                continue
            for message, _ in outcomes:
                if message.id not in recorded:
                    log.warning(
                        "sms outcome not recorded: claim taken over",
                        extra={"message_id": message.id},
                    )
                self._held.pop(message.id, None)
            return
        for message, outcome in outcomes:
            log.error(
                "sms outcome lost; the message will be settled as unknown",
                extra={"message_id": message.id, "status": outcome.status},
            )
            self._held.pop(message.id, None)

    async def _opted_out(self, numbers: list[str]) -> None:
        """Pass on the carrier's word that these numbers' recipients told it to stop. A
        failure is logged, not retried: the outcome is recorded, and the carrier refuses
        the number's next message the same way, which passes it on again."""
        if not numbers or self.on_opted_out is None:
            return
        try:
            async with self.db.transaction() as tx:
                for number in numbers:
                    await self.on_opted_out(tx, self.ctx, number)
        except Exception as exc:
            log.warning(
                "carrier opt-out not passed on",
                extra={"messages": len(numbers), "error_type": type(exc).__name__},
            )

    async def _settle_unwanted(self, messages: list[Claimed]) -> None:
        now = self.ctx.clock.now()
        async with self.db.transaction() as tx:
            for kind, renderer in self.renderers.items():
                mine = [message for message in messages if message.kind == kind]
                if mine:
                    await renderer.unwanted(tx, self.ctx, mine, now=now)
        for message in messages:
            self._held.pop(message.id, None)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            with contextlib.suppress(Exception):  # the next beat tries again
                await outbox.renew(
                    self.db, list(self._held.values()), until=self.ctx.clock.now() + self.lease
                )

    async def _retry_soon(self, messages: list[Claimed], now: dt.datetime) -> None:
        # Still wanted, just not taken: pending again after a short pause, so a database
        # that keeps failing is not claimed from in a busy loop; if even that write fails,
        # their lease runs out instead (the heartbeat no longer renews it). Expired, as
        # unwanted messages are, codes were lost to a blip.
        for message in messages:
            self._held.pop(message.id, None)
        retry_at = now + dt.timedelta(seconds=BLIP_RETRY_SECONDS)
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await outbox.release(self.db, messages, retry_at=retry_at)

    async def _give_back(self) -> None:
        held, self._held = list(self._held.values()), {}
        if held:
            with anyio.CancelScope(shield=True):
                await outbox.release(self.db, held)

    async def run_forever(self, *, poll_seconds: float = 1.0, linger_seconds: float = 0.02) -> None:
        """Drain soon after every kick, and at least once per poll interval, until a stop
        is asked for (:meth:`request_stop`)."""
        while not self.stopping:
            self._wake.clear()
            try:
                await self.drain(whole=False)
            except Exception as exc:  # a bad row or a database blip must not stop sending
                if database_unavailable(exc):
                    # Routine (a restart, a failover): one line, as the service logs it;
                    # the next drain runs on a fresh connection.
                    unavailable = {"error_type": type(exc).__name__}
                    log.warning("outbox drain: database unavailable", extra=unavailable)
                else:
                    log.exception("outbox drain failed")
            if self.stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            except TimeoutError:
                continue
            # Kicked: let the rest of a burst of starts queue up for a moment, so one
            # claim serves many messages.
            await asyncio.sleep(linger_seconds)


def _error_class(outcome: Outcome) -> str:
    """A failure's kind for metrics: never a number or a message, only a class of code.
    ``busy`` is only what is retried because the carrier asked for time: an error inside
    the carrier (settled as unknown) and our credentials refused each have their own, so
    an alert on a failing carrier or a rotated token is not read as rate limiting."""
    code = outcome.error_code
    if outcome.status == "sent" or code is None:
        return "none"
    if code in ("network", "no_answer", "bad_response"):
        return code
    if outcome.status == "failed":
        return "refused"
    if outcome.status == "unknown":
        return "carrier_error"  # failed mid-request: it may have been sent
    return "credentials" if code in CREDENTIAL_ERRORS else "busy"


# Twilio's answer to credentials it does not take (20003), or its HTTP status alone.
CREDENTIAL_ERRORS = frozenset({"20003", "401"})


def _sent(result: SendResult) -> Outcome:
    return Outcome(
        "sent",
        Tag.SMS_SENT,
        {"carrier": result.carrier},
        carrier=result.carrier,
        carrier_message_id=result.message_id,
        delivery_status=result.status,
    )
