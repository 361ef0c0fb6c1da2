"""`orbox api-keys add|list|revoke`: the key is printed once and stored only as sha256; revocation is live."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
from api_data.fixtures import Server
from conftest import orbox_cli


def test_add_prints_only_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    result = orbox_cli("api-keys", "add", "monitor-or2", "--keys", str(keys))
    assert result.returncode == 0
    key = result.stdout.strip()
    assert result.stdout == key + "\n" and re.fullmatch(r"orbox-[A-Za-z0-9_-]{43}", key)
    stored = keys.read_text()
    assert key not in stored and key[6:] not in stored
    entry = json.loads(stored)["keys"][0]
    assert entry["name"] == "monitor-or2" and entry["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert keys.stat().st_mode & 0o077 == 0  # not readable by other users
    second = orbox_cli("api-keys", "add", "tablet-1", "--keys", str(keys), "--priority", "high").stdout.strip()
    assert second != key
    listing = orbox_cli("api-keys", "list", "--keys", str(keys))
    assert "monitor-or2" in listing.stdout and "tablet-1" in listing.stdout and key not in listing.stdout
    rows = json.loads(orbox_cli("api-keys", "list", "--keys", str(keys), "--json").stdout)
    assert {(r["name"], r["priority"]) for r in rows} == {("monitor-or2", "normal"), ("tablet-1", "high")}


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    assert orbox_cli("api-keys", "add", "a", "--keys", str(keys)).returncode == 0
    before = keys.read_bytes()
    duplicate = orbox_cli("api-keys", "add", "a", "--keys", str(keys))
    assert duplicate.returncode == 1 and "a key named 'a' exists" in duplicate.stderr and not duplicate.stdout
    bad_name = orbox_cli("api-keys", "add", "bed 4/../x", "--keys", str(keys))
    assert bad_name.returncode == 1 and "device name" in bad_name.stderr and "Traceback" not in bad_name.stderr
    missing = orbox_cli("api-keys", "revoke", "ghost", "--keys", str(keys))
    assert missing.returncode == 1 and "no key named 'ghost'" in missing.stderr and "known: a" in missing.stderr
    assert keys.read_bytes() == before  # nothing lost, nothing half-written
    keys.write_text('{"keys": [{"name": "x", "sha256": "abc"}]}')
    broken = orbox_cli("api-keys", "list", "--keys", str(keys))
    assert broken.returncode == 1 and f"{keys}: keys[0].sha256: expected 64 lower-case hex digits" in broken.stderr


def test_revoked_and_new_keys_take_effect_on_a_running_server(api_server: Server) -> None:
    url = api_server.url + "/v1/models"
    added = orbox_cli("api-keys", "add", "temp-device", "--keys", str(api_server.keys_file)).stdout.strip()
    assert httpx.get(url, headers={"Authorization": f"Bearer {added}"}).status_code == 200
    assert orbox_cli("api-keys", "revoke", "temp-device", "--keys", str(api_server.keys_file)).returncode == 0
    refused = httpx.get(url, headers={"Authorization": f"Bearer {added}"})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert httpx.get(url, headers=api_server.headers()).status_code == 200  # the others still work
    for header in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = httpx.get(url, headers=header)
        assert response.status_code == 401 and set(response.json()["error"]) == {"message", "type", "param", "code"}
