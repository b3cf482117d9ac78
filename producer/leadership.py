"""Producer high availability: replicas elect one leader on a ``coordination.k8s.io`` Lease.

The algorithm is client-go's. Every ``renew_period`` each replica reads the Lease. The
holder writes a new ``renewTime``; any other replica takes the Lease over once the
record has not changed for ``lease_duration`` by its own clock (clocks across nodes are
never compared). Every write carries the ``resourceVersion`` it read, so of two replicas
racing for an expired Lease the API server lets exactly one win (409 Conflict for the
other). A leader that cannot renew for ``lease_duration - renew_period`` stops publishing
before anyone may take over.

Two leaders at once cannot corrupt the topic even so: every replica uses the same
transactional id, so the newcomer's ``init_transactions`` fences the old one, whose next
commit fails and publishes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kafkube.producer import metrics
from kafkube.producer.publishing import FencedError
from kafkube.producer.settings import LeaderElection

log = logging.getLogger(__name__)

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


class LeaderElector:
    """Holds or waits for the Lease; ``leading`` is set while this replica may publish."""

    def __init__(
        self,
        api_client: client.ApiClient,
        settings: LeaderElection,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.leases = client.CoordinationV1Api(api_client)
        self.leading = threading.Event()
        self.lost = threading.Event()  # set when a held lease could not be kept
        # Set while this replica cannot publish (Kafka unreachable from here): it neither
        # takes nor keeps the Lease, so a standby with a working path leads.
        self.aside = threading.Event()
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None  # holder, renewTime, transitions
        self._observed_at = 0.0
        self._renewed_at = 0.0

    # --- one round ----------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One round of the algorithm; True while this replica holds the Lease."""
        s = self.settings
        now = self._clock()
        if self.aside.is_set():
            return False
        try:
            lease: Any = self.leases.read_namespaced_lease(
                s.lease_name, s.namespace, _request_timeout=5
            )
        except ApiException as err:
            if err.status != HTTP_NOT_FOUND:
                return self._failed(f"reading lease {s.namespace}/{s.lease_name}: {err.reason}")
            return self._write(None, transitions=0)
        except Exception as err:  # noqa: BLE001 - any network failure is one failed round
            return self._failed(f"reading lease {s.namespace}/{s.lease_name}: {err}")
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder = spec.holder_identity
        if holder and holder != s.identity:
            duration = spec.lease_duration_seconds or s.lease_duration_seconds
            if now - self._observed_at < duration:
                return self._follow(holder)
            log.info(
                "lease held by %s expired (no renewal for %.0f s): taking over", holder, duration
            )
        transitions = (spec.lease_transitions or 0) + (0 if holder == s.identity else 1)
        return self._write(lease, transitions=transitions)

    def _write(self, lease: Any, *, transitions: int) -> bool:  # noqa: ANN401 - a V1Lease
        s = self.settings
        moment = datetime.now(UTC)
        keeping = lease is not None and lease.spec.holder_identity == s.identity
        spec = client.V1LeaseSpec(
            holder_identity=s.identity,
            lease_duration_seconds=round(s.lease_duration_seconds),
            acquire_time=lease.spec.acquire_time if keeping else moment,
            renew_time=moment,
            lease_transitions=transitions,
        )
        try:
            if lease is None:
                body = client.V1Lease(
                    metadata=client.V1ObjectMeta(name=s.lease_name, namespace=s.namespace),
                    spec=spec,
                )
                self.leases.create_namespaced_lease(s.namespace, body, _request_timeout=5)
            else:
                lease.spec = spec  # metadata keeps the resourceVersion read: a conditional write
                self.leases.replace_namespaced_lease(
                    s.lease_name, s.namespace, lease, _request_timeout=5
                )
        except ApiException as err:
            if err.status == HTTP_CONFLICT:  # another replica wrote first: it leads
                return self._follow("another replica")
            return self._failed(f"writing lease {s.namespace}/{s.lease_name}: {err.reason}")
        except Exception as err:  # noqa: BLE001 - any network failure is one failed round
            return self._failed(f"writing lease {s.namespace}/{s.lease_name}: {err}")
        self._renewed_at = self._clock()
        if not self.leading.is_set():
            log.info("leading: lease %s/%s is held by %s", s.namespace, s.lease_name, s.identity)
            self.leading.set()
            metrics.LEADING.set(1)
        return True

    def _follow(self, holder: str) -> bool:
        if self.leading.is_set():
            log.warning("lease taken by %s: stopping publishing", holder)
            self._step_down()
        return False

    def _step_down(self) -> None:
        self.leading.clear()
        metrics.LEADING.set(0)
        self.lost.set()

    def _failed(self, why: str) -> bool:
        log.warning("leader election: %s", why)
        if self.leading.is_set():
            # Stop before the lease can expire for the others: never two publishing leaders.
            deadline = self.settings.lease_duration_seconds - self.settings.renew_period_seconds
            if self._clock() - self._renewed_at >= deadline:
                log.warning("could not renew the lease for %.0f s: stopping publishing", deadline)
                self._step_down()
        return self.leading.is_set()

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Rounds every ``renew_period`` until ``stop``; then hand the lease back if held."""
        while not stop.is_set():
            self.try_acquire_or_renew()
            stop.wait(self.settings.renew_period_seconds)
        self.release()

    def stand_aside(self) -> None:
        """Give the Lease up and take it no more until ``aside`` is cleared."""
        self.aside.set()
        self.release()

    def release(self) -> None:
        """Give the lease up at once (a clean stop): the next replica need not wait it out."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        metrics.LEADING.set(0)
        s = self.settings
        try:
            held: Any = self.leases.read_namespaced_lease(
                s.lease_name, s.namespace, _request_timeout=5
            )
            if held.spec.holder_identity == s.identity:
                held.spec.holder_identity = None
                held.spec.renew_time = None
                self.leases.replace_namespaced_lease(
                    s.lease_name, s.namespace, held, _request_timeout=5
                )
                log.info("released lease %s/%s", s.namespace, s.lease_name)
        except Exception as err:  # noqa: BLE001 - it expires on its own
            log.warning("could not release the lease (it expires on its own): %s", err)


def lead_then_run(
    elector: LeaderElector,
    stop: threading.Event,
    run: Callable[[threading.Event], object],
    *,
    can_publish: Callable[[], bool] = lambda: True,
    stalled: Callable[[], str | None] = lambda: None,
) -> None:
    """Wait to lead, then ``run`` with an event set on shutdown or on losing the lease; after
    a loss (or being fenced) stand by again. A leader that ``stalled`` (events waiting too
    long for a commit: Kafka unreachable from here) gives the Lease up at once, even while
    ``run`` is still blocked in Kafka (the new leader's producer fences it), and competes
    again only after a lease duration, once ``can_publish`` says Kafka answers. Returns on
    ``stop``, or when ``run`` ends on its own (a finite source)."""
    rounds = threading.Thread(target=elector.run, args=(stop,), name="kafkube-lease", daemon=True)
    rounds.start()
    log.info("standing by for lease %s/%s", elector.settings.namespace, elector.settings.lease_name)
    try:
        while not stop.is_set():
            if not elector.leading.wait(timeout=0.5):
                continue
            elector.lost.clear()
            halt, gave_up = threading.Event(), threading.Event()
            watcher = threading.Thread(
                target=_watch_term,
                args=(elector, stop, halt, gave_up, stalled),
                name="kafkube-halt",
                daemon=True,
            )
            watcher.start()
            fenced = False
            try:
                run(halt)
            except FencedError as err:
                log.warning("%s; standing by again", err)
                fenced = True
            finally:
                ended_by = halt.is_set()
                halt.set()
            if gave_up.is_set():
                # A lease duration at least: a standby that can publish takes the Lease first.
                stop.wait(elector.settings.lease_duration_seconds)
                while not stop.is_set() and not can_publish():
                    stop.wait(elector.settings.renew_period_seconds)
                elector.aside.clear()
                if not stop.is_set():
                    log.info("Kafka answers again: standing by for the lease")
                continue
            if fenced:
                stop.wait(elector.settings.renew_period_seconds)
                continue
            if not ended_by:
                return  # the source ended: nothing more to publish
            if not stop.is_set():
                log.info("publishing stopped (lease lost); standing by again")
    finally:
        stop.set()
        rounds.join(timeout=15)


def _watch_term(
    elector: LeaderElector,
    stop: threading.Event,
    halt: threading.Event,
    gave_up: threading.Event,
    stalled: Callable[[], str | None],
) -> None:
    """Ends a term (sets ``halt``) on shutdown, on a lost lease, or when it stalled: then the
    Lease is given up first, for a standby to take."""
    while not halt.is_set():
        if stop.wait(0.2) or elector.lost.is_set():
            halt.set()
            return
        why = stalled()
        if why is not None:
            log.warning("%s: giving the lease up for a replica that can publish", why)
            gave_up.set()
            elector.stand_aside()
            halt.set()
            return
