"""`[cluster] dns` settings (config/cluster.py): the name, the port its instances listen
on, and what it may not be combined with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.cluster import ClusterSettings


def test_dns_needs_a_secret_and_a_port() -> None:
    with pytest.raises(ValidationError, match="secret"):
        ClusterSettings.model_validate({"dns": "edge.ns.svc.cluster.local", "dns_port": 8090})
    with pytest.raises(ValidationError, match="dns_port"):
        ClusterSettings.model_validate({"dns": "edge.ns.svc.cluster.local", "secret": "k"})


def test_the_port_is_dns_port_or_the_one_of_self() -> None:
    alone = ClusterSettings.model_validate(
        {"dns": "Edge.NS.svc.cluster.local.", "dns_port": 8090, "secret": "k"}
    )
    assert (alone.dns, alone.port, alone.dns_peer_port) == ("edge.ns.svc.cluster.local", 8090, 8090)
    assert alone.instances_on and alone.self_url is None
    with_self = ClusterSettings.model_validate(
        {"dns": "edge", "self": "http://10.0.0.5:8091", "secret": "k"}
    )
    assert (with_self.port, with_self.dns_peer_port) == (8091, 8091)


def test_dns_is_a_host_name_and_not_combined_with_the_registry() -> None:
    for bad in ("", "http://edge", "edge:80", "a b", "x" * 254):
        with pytest.raises(ValidationError, match="host name"):
            ClusterSettings.model_validate({"dns": bad, "dns_port": 1, "secret": "k"})
    with pytest.raises(ValidationError, match="not both"):
        ClusterSettings.model_validate(
            {"dns": "edge", "registry": True, "self": "http://a:1", "secret": "k"}
        )
