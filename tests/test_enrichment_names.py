"""Enrichment puts an involved object's name into a request path only if Kubernetes' naming
rules allow it: event data cannot steer a read to another namespace's object."""

from __future__ import annotations

import pytest

from kafkube.producer.enriching import may_name_in_path


@pytest.mark.parametrize(
    ("scope", "name"),
    [("shop", "web-7d9f-x2k4q"), ("shop", "node-1.example.com"), ("", "node-1"), ("a", "0")],
)
def test_names_kubernetes_allows_are_read(scope: str, name: str) -> None:
    assert may_name_in_path(scope, name)


@pytest.mark.parametrize(
    ("scope", "name"),
    [
        ("shop", "../../kube-system/pods/x"),
        ("shop", "x/../../y"),
        ("shop", ".."),
        ("shop", "web%2F..%2Fx"),
        ("shop", "Web"),
        ("shop", "web?watch=1"),
        ("../kube-system", "x"),
        ("shop.prod", "x"),
        ("shop", ""),
        ("shop", "a" * 254),
    ],
)
def test_names_that_could_leave_their_path_are_never_read(scope: str, name: str) -> None:
    assert not may_name_in_path(scope, name)
