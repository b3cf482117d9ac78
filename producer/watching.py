"""List and watch Events through the real ``kubernetes`` client, reading the raw JSON.

The requests go through the client's own ``ApiClient`` (its authentication, TLS, proxy and
retry settings from the kubeconfig or the service account), built and sent by its
``param_serialize`` and ``call_api``, but not through its generated API classes: importing
``CoreV1Api``, hundreds of validated methods, takes about a second of a producer's start, for
the one list and watch kafkube makes. The client's model objects are skipped too: the
stream's lines are parsed as JSON and handed on as plain dicts, which the converter types.
``Watch.stream`` is not used: with ``deserialize=False`` it neither tracks the
resourceVersion nor reads an ERROR event's status, and it retries a 410 on its own once; here
a 410, in the HTTP status or as an ERROR event in the stream, always raises
``ResourceExpiredError`` so the caller relists.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from kafkube.core.errors import SourceError
from kafkube.producer.converting import Converted
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1

HTTP_GONE = 410
# Where each Event API's collection is.
_API_PATHS = {API_CORE_V1: "/api/v1", API_EVENTS_V1: "/apis/events.k8s.io/v1"}


class ResourceExpiredError(SourceError):
    """The resourceVersion is older than the server keeps (410 Gone): relist."""


class WatchItem(NamedTuple):
    """One item of a watch stream (a tuple: one is made for every event)."""

    type: str  # ADDED, MODIFIED, DELETED or BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))

    @property
    def uid(self) -> str:
        return str(self.object.get("metadata", {}).get("uid", ""))


class LineItem(NamedTuple):
    """A watch event whose line the compiled line pass read: its record's value made, its
    dict parsed only where something asks for it (rare: a record Kafka refused, one too
    large for the topic)."""

    type: str  # ADDED, MODIFIED or DELETED
    converted: Converted
    line: bytes

    @property
    def object(self) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.line)["object"]
        return obj

    @property
    def resource_version(self) -> str:
        return self.converted[2]

    @property
    def uid(self) -> str:
        return self.converted[1]


# A line of a watch stream to its item, or None: the line is parsed as JSON and read as usual.
LineReader = Callable[[bytes], LineItem | None]


@dataclass(frozen=True)
class Listing:
    """A list's events (or one page of them) and its resourceVersion (every page has it)."""

    items: list[dict[str, Any]]
    resource_version: str


class EventSource(Protocol):
    """Where events come from: the API server (``KubeEvents``) or a recording."""

    finite: bool

    def pages(self) -> Iterator[Listing]:
        """Every Event the source has now, a page at a time (at least one page)."""
        ...

    def watch(
        self,
        resource_version: str,
        *,
        timeout_seconds: int,
        read_line: LineReader | None = None,
    ) -> Iterator[WatchItem | LineItem]:
        """Changes after ``resource_version``; ``read_line``, where given, may read a line of
        the stream itself."""
        ...

    def stop(self) -> None: ...


def _source_error(err: Exception) -> SourceError:
    if isinstance(err, ApiException) and err.status == HTTP_GONE:
        return ResourceExpiredError(f"resourceVersion expired: {err.reason}")
    return SourceError(f"Kubernetes API: {err}")


class KubeEvents:
    """Events of one API view (core/v1 or events.k8s.io/v1), cluster-wide or of one namespace."""

    finite = False

    def __init__(
        self, api_client: client.ApiClient, *, api_version: str, namespace: str = ""
    ) -> None:
        """Every namespace's events when ``namespace`` is empty (cluster-wide rights), else
        that namespace's (the rights of a Role in it suffice)."""
        if api_version not in _API_PATHS:
            raise ValueError(f"unknown Event API {api_version!r}")
        self.api_version = api_version
        self._api_client = api_client
        scope = f"/namespaces/{namespace}" if namespace else ""
        self._path = f"{_API_PATHS[api_version]}{scope}/events"
        self._response: Any = None

    def _get(self, **query: str | int | bool) -> urllib3.BaseHTTPResponse:
        """The events' collection, GET with these query parameters: the HTTP response, its
        body unread; an answer other than 2xx raised as the client's ApiException."""
        request = self._api_client.param_serialize(
            method="GET",
            resource_path=self._path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        answer = self._api_client.call_api(*request)
        if not 200 <= answer.status <= 299:
            answer.read()
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return answer.response  # type: ignore[no-any-return]

    def pages(self, *, page_size: int = 500) -> Iterator[Listing]:
        """Every Event the server has now, page by page as they come, each page with the
        list's resourceVersion (the pages of one list are one snapshot)."""
        token: str | None = None
        while True:
            query: dict[str, str | int] = {"limit": page_size}
            if token:
                query["continue"] = token
            try:
                page = orjson.loads(self._get(**query).data)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
                raise _source_error(err) from err
            metadata = page.get("metadata") or {}
            yield Listing(page.get("items") or [], str(metadata.get("resourceVersion", "")))
            token = metadata.get("continue")
            if not token:
                return

    def list(self) -> Listing:
        """Every Event the server has now, at once, and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        for page in self.pages():
            items.extend(page.items)
        return Listing(items, page.resource_version)

    def watch(
        self,
        resource_version: str,
        *,
        timeout_seconds: int,
        read_line: LineReader | None = None,  # noqa: ARG002 - the stream's lines come as text
    ) -> Iterator[WatchItem | LineItem]:
        """Changes after ``resource_version`` until the server ends the watch (its timeout)."""
        try:
            self._response = self._get(
                watch=True,
                resourceVersion=resource_version,
                allowWatchBookmarks=True,
                timeoutSeconds=timeout_seconds,
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            raise _source_error(err) from err
        response = self._response
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code, message = obj.get("code"), obj.get("message", "")
                    if code == HTTP_GONE:
                        raise ResourceExpiredError(f"resourceVersion expired: {message}")
                    raise SourceError(f"watch error {code}: {message}")
                yield WatchItem(type=str(kind), object=obj)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise SourceError(f"watch stream broke: {err}") from err
        finally:
            self._response = None
            response.release_conn()

    def stop(self) -> None:
        """Break a watch that blocks in another thread (its generator then ends or raises)."""
        response = self._response
        if response is not None:
            # Closing the socket wakes a read blocked in another thread.
            connection = getattr(response, "connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def open_api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client from this kubeconfig, or the in-cluster service account when none is given."""
    from kubernetes import config  # noqa: PLC0415

    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as err:
        where = kubeconfig or "the in-cluster service account"
        raise SourceError(f"cannot load Kubernetes credentials from {where}: {err}") from err
    return client.ApiClient(configuration)
