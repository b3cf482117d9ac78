"""Enrichment (opt-in): the involved object's labels and its controlling owner.

An event names the object it is about, not its labels nor the workload it belongs to, so
"every event of app=checkout" or "of Deployment web" cannot be asked of the raw stream.
With enrichment on, the producer reads the involved object's metadata (metadata only:
``PartialObjectMetadata``, never a Pod's spec), follows its controller once more where
that is a ReplicaSet (to its Deployment) or a Job (to its CronJob), and writes the labels
and the owner into the record (schema version 3).

It never stalls the stream: each read has a timeout (``timeout_seconds``), reads may take
at most ``budget`` of the producer's time (a leaky bucket of seconds: at 0.2, reads never
take more than a fifth of any stretch of time, however slow the API server is, and the
stream is never held back by more than that share plus one read), and at most
``reads_per_second``. A read not made in time leaves the fields empty, counted. Answers
are kept (``cache_size`` objects, ``ttl_seconds``), misses too: an object already gone
leaves the fields empty. A read the API server refuses (403: the producer's role lacks
``get`` on that kind) is logged, and that kind is not read again for ``ttl_seconds``.

Event data is not trusted: whoever may create Events in a namespace writes the involved
object's name. A name or namespace that Kubernetes' naming rules do not allow (a ``/``,
a ``..``) is never put into a request path: that read is skipped, counted. One deadline
bounds each read whole, the answer's body included: a server that trickles a byte at a
time cannot hold the stream past ``timeout_seconds`` (the read goes on off the stream's
thread, at most a few of them at once, and its answer is dropped).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import urllib3
from kubernetes import client

from kafkube.core.waiting import Deadline
from kafkube.producer.settings import Enrichment
from kafkube.schemas.records import EventRecord, Owner

log = logging.getLogger(__name__)

_METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_OK, _FORBIDDEN, _NOT_FOUND = 200, 403, 404

# The kinds whose metadata is read, by (apiVersion, kind): the API path and plural, and
# whether they live in a namespace. The chart grants `get` on exactly these.
KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "Node"): ("/api/v1", "nodes", False),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("apps/v1", "ReplicaSet"): ("/apis/apps/v1", "replicasets", True),
    ("apps/v1", "StatefulSet"): ("/apis/apps/v1", "statefulsets", True),
    ("apps/v1", "DaemonSet"): ("/apis/apps/v1", "daemonsets", True),
    ("batch/v1", "Job"): ("/apis/batch/v1", "jobs", True),
    ("batch/v1", "CronJob"): ("/apis/batch/v1", "cronjobs", True),
}
# Kubernetes' naming rules: an object's name is a DNS subdomain (RFC 1123), a namespace a
# DNS label; neither can hold a "/" or "..", so neither can step out of its request path.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_READERS = 4  # reads under way at once; one past its deadline still holds its thread
# A controller followed once more to the one above it.
_FOLLOWED = {("apps/v1", "ReplicaSet"), ("batch/v1", "Job")}


@dataclass(frozen=True)
class _Metadata:
    labels: dict[str, str] | None
    controller: tuple[str, str, str] | None  # (apiVersion, kind, name) of its controller


@dataclass
class EnrichStats:
    enriched: int = 0
    skipped: int = 0  # not read in time (budget, rate, timeout, a bad name): fields left empty
    refused: int = 0  # reads the API server refused (403)
    bad_names: int = 0  # names or namespaces Kubernetes does not allow: never asked for


_Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


class Enricher:
    def __init__(
        self,
        api_client: client.ApiClient,
        settings: Enrichment,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api_client
        self.settings = settings
        self.stats = EnrichStats()
        self._clock = clock
        self._cache: OrderedDict[_Key, tuple[float, _Metadata | None]] = OrderedDict()
        self._refused: dict[tuple[str, str], float] = {}  # kind -> refused until (clock)
        self._reading: list[threading.Thread] = []
        self._spent = 0.0  # seconds of reading not yet paid back by the budget
        self._tokens = settings.reads_per_second
        self._last = clock()

    def close(self, timeout: float = 5.0) -> None:
        """Wait, at most ``timeout`` seconds in all, for reads given up on but still under way."""
        deadline = Deadline(timeout)
        for thread in self._reading:
            thread.join(deadline.left())

    def enrich(self, record: EventRecord) -> EventRecord:
        """The record with the involved object's labels and owner, where they were found."""
        regarding = record["regarding"]
        if not regarding or not regarding["kind"] or not regarding["name"]:
            return record
        key = (
            regarding["api_version"] or "v1",
            regarding["kind"],
            regarding["namespace"] or "",
            regarding["name"],
        )
        found = self._metadata(key)
        if found is None:
            return record
        record["regarding_labels"] = found.labels
        record["regarding_owner"] = self._owner(key[2], found)
        self.stats.enriched += 1
        return record

    def _owner(self, namespace: str, found: _Metadata) -> Owner | None:
        if found.controller is None:
            return None
        api_version, kind, name = found.controller
        if (api_version, kind) in _FOLLOWED:
            above = self._metadata((api_version, kind, namespace, name))
            if above is not None and above.controller is not None:
                _, kind, name = above.controller
        return {"kind": kind, "name": name}

    # --- reading, within bounds ---------------------------------------------------------------

    def _metadata(self, key: _Key) -> _Metadata | None:
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        kind = (key[0], key[1])
        if kind not in KINDS or self._refused.get(kind, 0.0) > now:
            return None
        allowed = _allowed(key)
        if not allowed:
            self.stats.bad_names += 1
        if not allowed or not self._may_read(now):
            self.stats.skipped += 1
            return None
        began = self._clock()
        try:
            found = self._read_in_time(key)
        except _Refused:
            self._refused[kind] = now + self.settings.ttl_seconds
            self.stats.refused += 1
            log.warning(
                "enrichment: the API server refuses to let this producer get %s: events about "
                "them carry no labels or owner for %.0f s, then it asks again; grant `get` on "
                "%s to enrich them",
                KINDS[kind][1], self.settings.ttl_seconds, KINDS[kind][1],
            )  # fmt: skip
            found = None
        except _Skipped:
            self.stats.skipped += 1
            return None
        finally:
            self._spent += self._clock() - began
        self._cache[key] = (now + self.settings.ttl_seconds, found)
        self._cache.move_to_end(key)
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)
        return found

    def _may_read(self, now: float) -> bool:
        elapsed, self._last = now - self._last, now
        # The budget pays back reading time as the clock runs; so does the rate its tokens.
        self._spent = max(0.0, self._spent - elapsed * self.settings.budget)
        self._tokens = min(
            self.settings.reads_per_second, self._tokens + elapsed * self.settings.reads_per_second
        )
        if self._spent >= self.settings.budget or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _read_in_time(self, key: _Key) -> _Metadata | None:
        """The read, within one deadline for all of it; skipped past the deadline, or when
        every reader is still held by an earlier one (a daemon thread: a read held for ever
        never holds the process's exit)."""
        self._reading = [thread for thread in self._reading if thread.is_alive()]
        if len(self._reading) >= _READERS:
            raise _Skipped
        answer: list[_Metadata | Exception | None] = []

        def read() -> None:
            try:
                answer.append(self._read(key))
            except (_Skipped, _Refused) as err:
                answer.append(err)

        thread = threading.Thread(target=read, name="kafkube-enrich", daemon=True)
        thread.start()
        self._reading.append(thread)
        thread.join(self.settings.timeout_seconds)
        if not answer:
            raise _Skipped
        if isinstance(answer[0], Exception):
            raise answer[0]
        return answer[0]

    def _read(self, key: _Key) -> _Metadata | None:
        api_version, kind, namespace, name = key
        prefix, plural, namespaced = KINDS[api_version, kind]
        path = (
            f"{prefix}/namespaces/{namespace}/{plural}/{name}"
            if namespaced
            else f"{prefix}/{plural}/{name}"
        )
        method, url, headers, body, post = self._api.param_serialize(
            "GET", path, header_params={"Accept": _METADATA_ONLY}, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(
                method, url, header_params=headers, body=body, post_params=post,
                _request_timeout=self.settings.timeout_seconds,
            )  # fmt: skip
            data = response.read()
        except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            raise _Skipped from err
        if response.status == _NOT_FOUND:
            return None  # gone already: the fields stay empty
        if response.status == _FORBIDDEN:
            raise _Refused
        if response.status != _OK:
            raise _Skipped
        try:
            metadata = orjson.loads(data).get("metadata") or {}
        except (orjson.JSONDecodeError, AttributeError) as err:
            raise _Skipped from err
        controller = next(
            (
                (str(ref["apiVersion"]), str(ref["kind"]), str(ref["name"]))
                for ref in metadata.get("ownerReferences") or []
                if ref.get("controller")
            ),
            None,
        )
        labels = metadata.get("labels")
        return _Metadata(labels=dict(labels) if labels else None, controller=controller)


def _allowed(key: _Key) -> bool:
    _, _, namespace, name = key
    return may_name_in_path(namespace, name)


def may_name_in_path(namespace: str, name: str) -> bool:
    """Whether Kubernetes allows this name and namespace (so they are safe in a request
    path): an object's name a DNS subdomain, a namespace a DNS label (or none)."""
    name_ok = len(name) <= 253 and _NAME.fullmatch(name) is not None
    namespace_ok = not namespace or (
        len(namespace) <= 63 and _NAMESPACE.fullmatch(namespace) is not None
    )
    return name_ok and namespace_ok


class _Skipped(Exception):  # noqa: N818 - reads as what happened
    """A read that did not answer in time or failed on the way: skipped, not retried."""


class _Refused(Exception):  # noqa: N818 - reads as what happened
    """The API server refused the read (403): the role lacks ``get`` on the kind."""
