"""A/B install on a simulated slot layout: checks before writing, crash safety, boot counting."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import re
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from image_data.helpers import snapshot, write_update

from image_build.cli import image
from image_build.errors import ImageError
from image_build.slots import boot, choose_boot_slot, init_target, install, load_state, mark_good, slot_path
from image_build.update_bundle import UpdateBundleRejected

OLD_IMAGE = random.Random(1).randbytes(200_000)
NEW_IMAGE = random.Random(2).randbytes(260_000)
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, key) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    other_key = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
    return {
        "new": write_update(root / "new.obx", key, image=NEW_IMAGE, version="2.0.0", min_version="1.0.0"),
        "old": write_update(root / "old.obx", key, image=NEW_IMAGE, version="0.9.0"),
        "other-profile": write_update(root / "p.obx", key, image=NEW_IMAGE, version="2.0.0",
                                      profile="mini-avx2"),
        "other-key": write_update(root / "k.obx", other_key, image=NEW_IMAGE, version="2.0.0"),
        "too-new-base": write_update(root / "m.obx", key, image=NEW_IMAGE, version="3.0.0", min_version="2.0.0"),
    }


@pytest.fixture
def target(tmp_path) -> Path:
    image_file = tmp_path / "factory.ext4"
    image_file.write_bytes(OLD_IMAGE)
    layout = tmp_path / "box"
    init_target(layout, profile="dev", version="1.0.0", image=image_file, slot_size=1 << 20, max_attempts=3)
    return layout


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_install_writes_the_other_slot_and_boots_it_once_confirmed(target, key, bundles):
    result = install(bundles["new"], target, key.public_key(), chunk_size=CHUNK)
    assert (result.slot, result.version, result.previous_version) == ("b", "2.0.0", "1.0.0")
    assert slot_path(target, "b").read_bytes() == NEW_IMAGE
    assert slot_path(target, "a").read_bytes() == OLD_IMAGE
    state = load_state(target)
    assert state["primary"] == "b" and state["slots"]["b"]["state"] == "pending"
    assert boot(target) == "b"
    assert mark_good(target) == ("b", True)
    for _ in range(5):
        assert boot(target) == "b"
    assert load_state(target)["slots"]["b"]["state"] == "good"


@pytest.mark.parametrize(("name", "message"), [
    ("other-key", "signature does not verify"),
    ("other-profile", "profile 'mini-avx2', this box is 'dev'"),
    ("old", "not newer than the running 1.0.0"),
    ("too-new-base", "needs at least version 2.0.0"),
])
def test_refused_bundles_write_nothing(target, key, bundles, name, message):
    before = snapshot(target)
    with pytest.raises(UpdateBundleRejected, match=message):
        install(bundles[name], target, key.public_key())
    assert snapshot(target) == before


@pytest.mark.parametrize("region", ["manifest", "slot image", "signature"])
def test_corrupted_bundle_is_refused_before_any_write(target, key, bundles, tmp_path, region):
    data = bytearray(bundles["new"].read_bytes())
    offsets = {"manifest": 40, "slot image": len(data) - 80 - 1000, "signature": len(data) - 50}
    data[offsets[region]] ^= 0x10
    corrupted = tmp_path / "corrupted.obx"
    corrupted.write_bytes(bytes(data))
    before = snapshot(target)
    with pytest.raises(UpdateBundleRejected):
        install(corrupted, target, key.public_key())
    assert snapshot(target) == before


def test_force_allows_a_downgrade(target, key, bundles):
    assert install(bundles["old"], target, key.public_key(), force=True).version == "0.9.0"


def test_unconfirmed_boots_fall_back_to_the_old_slot(target, key, bundles):
    install(bundles["new"], target, key.public_key())
    booted = [boot(target) for _ in range(5)]
    assert booted == ["b", "b", "b", "a", "a"]
    state = load_state(target)
    assert state["primary"] == "a" and state["slots"]["b"]["state"] == "bad"
    assert state["slots"]["a"] == {"state": "good", "version": "1.0.0", "sha256": _sha(OLD_IMAGE),
                                   "size": len(OLD_IMAGE)}


def test_install_refused_while_the_running_slot_is_unconfirmed(target, key, bundles, tmp_path):
    install(bundles["new"], target, key.public_key())
    boot(target)
    newer = write_update(tmp_path / "newer.obx", key, image=OLD_IMAGE, version="2.1.0")
    with pytest.raises(ImageError, match="not confirmed"):
        install(newer, target, key.public_key())


def _layout(target: Path) -> tuple[str, str, str]:
    """What the next power-on would run: (slot, version, sha256 of that slot's bytes)."""
    slot, state = choose_boot_slot(load_state(target))
    return slot, state["slots"][slot]["version"], _sha(slot_path(target, slot).read_bytes())


_OS_CALLS = ("write", "replace", "fsync", "ftruncate")


def _install_killed_at(target: Path, bundle: Path, pubkey_pem: bytes, kill_at: int) -> None:
    """Child process: count OS calls that change disk state and SIGKILL ourselves at call `kill_at`."""
    calls = {"n": 0}
    for name in _OS_CALLS:
        real = getattr(os, name)

        def wrapper(*args, _real=real, **kwargs):
            if calls["n"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            calls["n"] += 1
            return _real(*args, **kwargs)
        setattr(os, name, wrapper)
    install(bundle, target, serialization.load_pem_public_key(pubkey_pem), chunk_size=CHUNK)
    os._exit(0)


def test_killing_the_installer_at_every_step_leaves_exactly_old_or_new(target, key, bundles, tmp_path):
    pubkey_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    old = ("a", "1.0.0", _sha(OLD_IMAGE))
    new = ("b", "2.0.0", _sha(NEW_IMAGE))
    pristine = {name: path.read_bytes() for name, path in ((p.name, p) for p in target.iterdir())}
    context = multiprocessing.get_context("fork")
    outcomes = []
    for kill_at in range(200):
        for name, data in pristine.items():
            (target / name).write_bytes(data)
        child = context.Process(target=_install_killed_at, args=(target, bundles["new"], pubkey_pem, kill_at))
        child.start()
        child.join(60)
        layout = _layout(target)
        assert layout in (old, new), f"killed at OS call {kill_at}: layout {layout}"
        if layout == old:
            assert slot_path(target, "a").read_bytes() == OLD_IMAGE
        outcomes.append(layout)
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL
    assert child.exitcode == 0, "the installer never finished; raise the kill-point bound"
    assert outcomes[0] == old and outcomes[-1] == new
    assert len(outcomes) > 8, "expected kill points inside the slot write and around each state change"


def test_cli_install_boot_mark_good_and_errors(tmp_path, key, bundles):
    pub = tmp_path / "update.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    factory = tmp_path / "factory.ext4"
    factory.write_bytes(OLD_IMAGE)
    box = tmp_path / "box"
    runner = CliRunner()
    result = runner.invoke(image, ["init-target", str(box), "--profile", "dev", "--version", "1.0.0",
                                   "--image", str(factory), "--pubkey", str(pub), "--slot-size-mb", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(image, ["install", str(bundles["old"]), "--target", str(box)])
    assert result.exit_code == 1 and "refusing a downgrade" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = runner.invoke(image, ["install", str(bundles["new"]), "--target", str(box)])
    assert result.exit_code == 0 and "slot b" in result.output
    assert runner.invoke(image, ["boot", "--target", str(box)]).output.startswith("booted slot b (2.0.0)")
    assert runner.invoke(image, ["mark-good", "--target", str(box)]).output.strip() == "slot b marked good"
    result = runner.invoke(image, ["install", str(bundles["other-key"]), "--target", str(box)])
    assert result.exit_code == 1 and "signature does not verify" in result.output
    result = runner.invoke(image, ["mark-good", "--target", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no bootloader state" in result.output


def test_cli_bad_inputs_are_one_line_errors_that_write_nothing(tmp_path, key, bundles):
    pub = tmp_path / "update.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    factory = tmp_path / "factory.ext4"
    factory.write_bytes(OLD_IMAGE)
    runner = CliRunner()

    def init(box: str, **options: str):
        options = {"profile": "dev", "version": "1.0.0", "image": str(factory), **options}
        return runner.invoke(image, ["init-target", str(tmp_path / box), "--pubkey", str(pub),
                                     *[part for name, value in options.items() for part in (f"--{name}", value)]])

    for box, options, message in [
        ("v", {"version": "one"}, "version: expected a PEP 440 version such as 1.2.0, found 'one'"),
        ("p", {"profile": "no-such-sku"}, "profile 'no-such-sku': no-such-sku: no such profile"),
        ("i", {"image": str(tmp_path / "absent.ext4")}, "'--image': File"),
    ]:
        result = init(box, **options)
        assert result.exit_code != 0 and message in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert not (tmp_path / box).exists()
    assert init("box").exit_code == 0
    box = tmp_path / "box"
    before = snapshot(box)
    result = runner.invoke(image, ["install", str(tmp_path / "absent.obx"), "--target", str(box)])
    assert result.exit_code == 2 and "'UPDATE_BUNDLE': File" in result.output and "does not exist" in result.output
    assert snapshot(box) == before


@pytest.mark.parametrize(("change", "message"), [
    ({"slots": {"a": 5, "b": {"state": "empty"}}}, "slots.a must be an object with a state in"),
    ({"slots": {"a": {"state": "good"}, "b": {"state": "empty"}}}, "slots.a.version must be a PEP 440"),
    ({"max_attempts": "3"}, "field 'max_attempts' must be a positive integer, found '3'"),
    ({"booted": "c"}, "field 'booted' must be one of ['a', 'b', None], found 'c'"),
])
def test_a_damaged_bootloader_state_is_named_not_a_crash(target, key, bundles, change, message):
    state = {**load_state(target), **change}
    (target / "bootstate.json").write_text(json.dumps(state))
    before = snapshot(target)
    for action in (lambda: boot(target), lambda: install(bundles["new"], target, key.public_key())):
        with pytest.raises(ImageError, match=re.escape(f"{target / 'bootstate.json'}: {message}")):
            action()
    assert snapshot(target) == before
