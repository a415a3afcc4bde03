"""`[cluster]` settings (config/cluster.py): peer URLs normalised so every instance
hashes the same names, required fields, the secret never echoed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.cluster import ClusterSettings, peer_url


def test_peer_urls_are_normalised() -> None:
    assert peer_url("HTTP://Node-1.Example:8090/") == "http://node-1.example:8090"
    assert peer_url("http://[::1]:81") == "http://[::1]:81"
    for bad in ("https://a:1", "http://a", "http://a:1/x", "http://u@a:1", "a:1", "http://a:1?q"):
        with pytest.raises(ValueError):
            peer_url(bad)


def test_peers_take_strings_or_tables() -> None:
    s = ClusterSettings.model_validate(
        {
            "self": "http://a:1",
            "peers": ["http://a:1", {"url": "http://b:1", "weight": 2}],
            "secret": "k",
        }
    )
    assert [(p.url, p.weight) for p in s.peers] == [("http://a:1", 1.0), ("http://b:1", 2.0)]
    assert s.port == 1 and s.self_url == "http://a:1"


def test_peers_need_self_and_a_secret_which_is_never_shown() -> None:
    with pytest.raises(ValidationError, match="secret"):
        ClusterSettings.model_validate({"self": "http://a:1", "peers": ["http://a:1"]})
    with pytest.raises(ValidationError, match="self"):
        ClusterSettings.model_validate({"peers": ["http://a:1"], "secret": "k"})
    with pytest.raises(ValidationError) as err:
        ClusterSettings.model_validate(
            {"self": "http://a:1", "peers": ["http://a:1"], "secret": "hunter2", "port": 1}
        )
    assert "hunter2" not in str(err.value)
    assert "hunter2" not in repr(
        ClusterSettings.model_validate(
            {"self": "http://a:1", "peers": ["http://a:1"], "secret": "hunter2"}
        )
    )


def test_off_by_default() -> None:
    assert ClusterSettings().peers == () and ClusterSettings().port is None


def test_worker_sockets_need_a_secret() -> None:
    with pytest.raises(ValidationError, match="secret"):
        ClusterSettings.model_validate({"socket_dir": "/tmp/x"})
    assert ClusterSettings.model_validate({"socket_dir": "/tmp/x", "secret": "k"}).peers == ()


def test_a_registry_needs_self_and_a_ttl_above_the_heartbeat() -> None:
    with pytest.raises(ValidationError, match="self"):
        ClusterSettings.model_validate({"registry": True, "secret": "k"})
    with pytest.raises(ValidationError, match="member_ttl"):
        ClusterSettings.model_validate(
            {"registry": True, "secret": "k", "self": "http://a:1", "member_ttl": 1}
        )
    ok = {"registry": True, "secret": "k", "self": "http://a:1"}
    assert ClusterSettings.model_validate(ok).peers == ()


def test_a_socket_folder_must_leave_room_for_the_socket_name() -> None:
    with pytest.raises(ValidationError, match="unix socket"):
        ClusterSettings.model_validate({"socket_dir": "/" + "d" * 100, "secret": "k"})
