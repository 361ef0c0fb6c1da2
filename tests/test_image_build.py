"""`orbox image build` end to end: real mkfs/genimage/bmaptool, real wheels, qemu boot of the disk."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import struct
import subprocess
import tarfile
import tomllib
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from image_data.fixtures import EPOCH, build_for_test
from image_data.helpers import MODEL_MARKER

import appliance
from appliance.cli import serve
from appliance.config import parse_config
from appliance.fleet.cli import run
from image_build.cli import image
from image_build.errors import ImageError
from image_build.qemu import boot_test
from image_build.rauc_bundle import check_bundle
from image_build.spec import load_spec

pytestmark = pytest.mark.xdist_group("image_build")

OUTPUTS = {"disk.img", "disk.bmap", "rootfs.ext4", "update.raucb", "sbom.cdx.json", "build-record.json"}
NOT_REPRODUCIBLE = {"update.raucb"}  # RAUC: random verity salt and CMS signing time; its manifest contents are


@pytest.fixture(scope="session")
def builds(inputs, build_once) -> tuple[Path, Path]:
    """The same spec built twice, into two directories."""
    root = build_once("image-builds",
                      lambda out: [build_for_test(inputs, out / name) for name in ("build-1", "build-2")])
    return root / "build-1", root / "build-2"


def test_two_builds_of_one_spec_are_byte_identical(builds):
    first, second = builds
    assert {p.name for p in first.iterdir()} == OUTPUTS
    different = [name for name in sorted(OUTPUTS - NOT_REPRODUCIBLE)
                 if (first / name).read_bytes() != (second / name).read_bytes()]
    assert different == []


def _debugfs(image_file: Path, command: str) -> str:
    return subprocess.run(["/usr/sbin/debugfs", "-R", command, str(image_file)], capture_output=True,
                          text=True, check=True).stdout


def test_rootfs_holds_payload_models_and_fixed_owners_modes_times(builds, inputs):
    rootfs = builds[0] / "rootfs.ext4"
    listing = _debugfs(rootfs, "ls -l /opt/orbox/wheels")
    for wheel in inputs["wheels"].glob("*.whl"):
        assert wheel.name in listing
    model = inputs["bundle"] / "llm" / "tiny-q8_0.gguf"
    assert MODEL_MARKER in model.read_bytes()
    dumped = subprocess.run(["/usr/sbin/debugfs", "-R", "cat /opt/orbox/models/llm/tiny-q8_0.gguf", str(rootfs)],
                            capture_output=True, check=True).stdout
    assert dumped == model.read_bytes()
    selfcheck = _debugfs(rootfs, "stat /usr/libexec/orbox/selfcheck")
    assert re.search(r"Mode:\s+0755", selfcheck) and re.search(r"User:\s+0\s+Group:\s+0", selfcheck)
    assert f"mtime: 0x{EPOCH:08x}" in selfcheck and f"ctime: 0x{EPOCH:08x}" in selfcheck
    lock = _debugfs(rootfs, "cat /opt/orbox/requirements.lock")
    for wheel in inputs["wheels"].glob("*.whl"):
        assert f"{wheel.name} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}" in lock


def test_sbom_is_valid_cyclonedx_1_6_and_lists_the_real_contents(builds, inputs):
    text = (builds[0] / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    sbom = json.loads(text)
    assert sbom["specVersion"] == "1.6"
    by_type: dict[str, list[dict]] = {}
    for component in sbom["components"]:
        by_type.setdefault(component["type"], []).append(component)
    models = {c["name"]: c["hashes"][0]["content"] for c in by_type["machine-learning-model"]}
    assert models == {rel: hashlib.sha256((inputs["bundle"] / rel).read_bytes()).hexdigest()
                      for rel in ("llm/tiny-q8_0.gguf", "encoder/tiny-int8.onnx")}
    wheels = {c["purl"]: c["hashes"][0]["content"] for c in by_type["library"] if c["purl"].startswith("pkg:pypi")}
    assert set(wheels) == {"pkg:pypi/orbox@0.1.0", "pkg:pypi/orbox-tinydep@1.0.0"}
    assert any(c["name"] == "busybox-static" and c["purl"].startswith("pkg:deb/debian/busybox-static@")
               for c in by_type["library"])


def test_image_defaults_open_no_outbound_connection(builds):
    rootfs = builds[0] / "rootfs.ext4"
    # Read by the box's own config loader: a key it does not know would stop `orbox serve`.
    config = parse_config(tomllib.loads(_debugfs(rootfs, "cat /etc/orbox/orbox.toml")), "orbox.toml")
    assert config.http.host in ("127.0.0.1", "::1", "localhost")
    units = [name for name in _debugfs(rootfs, "ls -p /usr/lib/systemd/system").split("/")
             if name.endswith(".service")]
    assert {"orbox.service", "orbox-fleet.service", "orbox-selfcheck.service", "orbox-payload.service"} <= set(units)
    for unit in units:
        text = _debugfs(rootfs, f"cat /usr/lib/systemd/system/{unit}")
        assert "IPAddressDeny=any" in text, unit
        allowed = re.findall(r"^IPAddressAllow=(.*)$", text, re.MULTILINE)
        assert all(value.split() == ["localhost"] for value in allowed), unit
    for path in ("/etc/orbox/orbox.toml", "/etc/orbox/release.env", "/usr/libexec/orbox/install-payload"):
        hosts = re.findall(r"[a-z]+://([^/\s:\"']+)", _debugfs(rootfs, f"cat {path}"))
        assert set(hosts) <= {"127.0.0.1", "localhost", "::1"}, path
    assert "--no-index" in _debugfs(rootfs, "cat /usr/libexec/orbox/install-payload")


def test_the_image_service_starts_orbox_serve_with_the_image_profile_models_and_config(builds):
    """The image's orbox.service is the appliance's, byte for byte; its ExecStart, with release.env
    substituted as systemd does, must parse as a valid `orbox serve`."""
    rootfs = builds[0] / "rootfs.ext4"
    unit = _debugfs(rootfs, "cat /usr/lib/systemd/system/orbox.service")
    assert unit == (Path(appliance.__file__).parent / "systemd" / "orbox.service").read_text()
    assert "EnvironmentFile=/etc/orbox/release.env" in unit
    env = dict(line.split("=", 1) for line in _debugfs(rootfs, "cat /etc/orbox/release.env").splitlines())
    [exec_start] = re.findall(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda match: env[match.group(1)], exec_start))
    assert argv[:2] == ["/var/lib/orbox/venv/bin/orbox", "serve"]
    params = serve.make_context("serve", argv[2:]).params
    assert (params["profile_name"], params["bundle_dir"], params["config_path"]) == (
        "dev", "/opt/orbox/models", "/etc/orbox/orbox.toml")
    fleet = _debugfs(rootfs, "cat /usr/lib/systemd/system/orbox-fleet.service")  # off unless [fleet] is set
    [exec_start] = re.findall(r"^ExecStart=(.*)$", fleet, re.MULTILINE)
    argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda match: env[match.group(1)], exec_start))
    assert argv[:3] == ["/var/lib/orbox/venv/bin/orbox", "fleet", "run"]
    params = run.make_context("run", argv[3:]).params
    assert (params["config_path"], params["profile_name"], params["image_version"]) == (
        "/etc/orbox/orbox.toml", "dev", env["ORBOX_VERSION"])
    assert "Inode:" in _debugfs(rootfs, "stat /opt/orbox/models/manifest.json")
    assert "/var/lib/orbox/venv" in _debugfs(rootfs, "cat /usr/libexec/orbox/install-payload")


def test_signed_manifests_of_two_builds_agree_and_pin_the_recorded_rootfs(builds, inputs):
    """The bundle bytes differ, what RAUC signed does not: same image sha256, the build record's."""
    infos = [check_bundle(out / "update.raucb", inputs["keyring"]) for out in builds]
    assert infos[0] == infos[1]
    info, record = infos[0], json.loads((builds[0] / "build-record.json").read_bytes())
    assert (info.compatible, info.version) == ("orbox-dev", "1.0.0")
    assert info.images["rootfs"]["checksum"] == record["outputs"]["rootfs.ext4"]["sha256"]
    assert info.images["rootfs"]["size"] == record["outputs"]["rootfs.ext4"]["size"]
    assert info.meta == {
        "profile": "dev", "version": "1.0.0", "min-version": "0",
        "sbom-sha256": hashlib.sha256((builds[0] / "sbom.cdx.json").read_bytes()).hexdigest(),
        "build-record-sha256": hashlib.sha256((builds[0] / "build-record.json").read_bytes()).hexdigest(),
    }
    assert set(info.files) == {"rootfs.ext4", "sbom.cdx.json", "build-record.json", "meta.orbox.conf",
                               "manifest.raucm"}
    assert "update.raucb" not in record["outputs"]


def test_image_verify_prints_what_rauc_checked(builds, inputs):
    result = CliRunner().invoke(image, ["verify", str(builds[0] / "update.raucb"), "--keyring", str(inputs["keyring"])])
    assert result.exit_code == 0, result.output
    assert "compatible orbox-dev, version 1.0.0" in result.output and "sbom.cdx.json" in result.output


def test_the_disk_boots_through_grub_with_rauc_slots_and_the_slot_carries_its_kernel(builds, inputs):
    rootfs = builds[0] / "rootfs.ext4"
    assert "Inode:" in _debugfs(rootfs, "stat /boot/vmlinuz") and "Inode:" in _debugfs(rootfs, "stat /boot/initrd.img")
    conf = _debugfs(rootfs, "cat /etc/rauc/system.conf")
    for line in ("compatible=orbox-dev", "bootloader=grub", "grubenv=/boot/efi/EFI/BOOT/grubenv",
                 "bundle-formats=-plain", "pre-install=/usr/libexec/orbox/rauc-pre-install",
                 "device=/dev/vda2", "bootname=A", "device=/dev/vda3", "bootname=B"):
        assert line in conf.splitlines(), line
    assert _debugfs(rootfs, "cat /etc/rauc/keyring.pem") == inputs["keyring"].read_text()
    assert _debugfs(rootfs, "cat /usr/lib/systemd/system.conf.d/orbox-watchdog.conf").splitlines()[1:] == [
        "[Manager]", "RuntimeWatchdogSec=30s"], "the dev profile's watchdog timeout"
    assert "/usr/libexec/orbox/boot-watchdog" in _debugfs(rootfs, "cat /etc/init.d/S01orbox-watchdog")
    disk = (builds[0] / "disk.img").read_bytes()
    env_at = disk.find(b"# GRUB Environment Block\n")
    assert disk[env_at:env_at + 1024].split(b"\n")[1:6] == [b"ORDER=A B", b"A_OK=1", b"A_TRY=0", b"B_OK=0",
                                                           b"B_TRY=0"]
    assert b"A_TRY -lt 3" not in disk and b'"$TRY" -lt 3' in disk, "grub.cfg gives each unconfirmed slot 3 tries"


def _bmap(path: Path) -> tuple[int, list[range]]:
    """(block size, mapped block ranges) of a bmap file."""
    root = ElementTree.parse(path).getroot()
    ranges = []
    for element in root.find("BlockMap"):
        first, _, last = element.text.strip().partition("-")
        ranges.append(range(int(first), int(last or first) + 1))
    return int(root.findtext("BlockSize")), ranges


def _gpt(disk: bytes) -> dict[str, range]:
    """Partition name -> byte range, from the primary GPT (512-byte sectors)."""
    assert disk[512:520] == b"EFI PART"
    entries_lba, count, size = struct.unpack_from("<QII", disk, 512 + 72)
    parts = {}
    for index in range(count):
        start = entries_lba * 512 + index * size
        entry = disk[start:start + size]
        if entry[:16] != bytes(16):
            first, last = struct.unpack_from("<QQ", entry, 32)
            parts[entry[56:128].decode("utf-16-le").rstrip("\0")] = range(first * 512, (last + 1) * 512)
    return parts


def test_bmap_maps_every_used_block_of_esp_slot_a_data_and_both_gpts_and_skips_slot_b(builds, tmp_path):
    """bmaptool writes only mapped blocks, so flashing over a used disk leaves its old bytes elsewhere:
    every non-zero block must be mapped, slot B (empty) need not be, and the flashed box must be clean."""
    disk, bmap = builds[0] / "disk.img", builds[0] / "disk.bmap"
    data = disk.read_bytes()
    block, ranges = _bmap(bmap)
    mapped = {number for blocks in ranges for number in blocks}
    parts = _gpt(data)
    assert list(parts) == ["esp", "rootfs-a", "rootfs-b", "data"]
    zero = bytes(block)
    assert [n for n in range(len(data) // block) if n not in mapped and data[n * block:(n + 1) * block] != zero] == []
    assert {0, len(data) // block - 1} <= mapped, "both GPTs (first and last block)"
    slot_b = range(parts["rootfs-b"].start // block, parts["rootfs-b"].stop // block)
    assert not mapped & set(slot_b), "the factory slot B is empty: flashing skips it"
    for name in ("esp", "rootfs-a", "data"):
        assert mapped & set(range(parts[name].start // block, parts[name].stop // block)), name
    assert len(mapped) * block < len(data) // 2, "the bmap must save writing most of the disk"

    # bmaptool checks every range's sha256 while copying; onto a file it writes holes elsewhere.
    copied = tmp_path / "copied.img"
    subprocess.run(["bmaptool", "copy", "--bmap", str(bmap), str(disk), str(copied)], check=True, capture_output=True)
    assert copied.read_bytes() == data

    # A used disk: what bmaptool leaves unwritten on a block device keeps its old bytes.
    used = bytearray(b"\xa5" * len(data))
    for blocks in ranges:
        used[blocks.start * block:blocks.stop * block] = data[blocks.start * block:blocks.stop * block]
    assert _gpt(bytes(used)) == parts
    for name, fsck in (("esp", ["fsck.vfat", "-n"]), ("rootfs-a", ["e2fsck", "-fn"]), ("data", ["e2fsck", "-fn"])):
        part = tmp_path / f"{name}.img"
        part.write_bytes(used[parts[name].start:parts[name].stop])
        result = subprocess.run([f"/usr/sbin/{fsck[0]}", *fsck[1:], str(part)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
    flashed_sums = _debugfs(tmp_path / "rootfs-a.img", "cat /usr/share/orbox/SHA256SUMS")
    assert flashed_sums and flashed_sums == _debugfs(builds[0] / "rootfs.ext4", "cat /usr/share/orbox/SHA256SUMS")


def test_qemu_boots_the_demo_disk_and_the_self_check_passes(builds, tmp_path):
    report = boot_test(builds[0] / "disk.img", tmp_path, timeout_s=180)
    assert report.ok, report.console[-2000:]
    assert re.search(r"orbox self-check: OK profile=dev version=1\.0\.0 files=\d+", report.verdict)


def test_qemu_self_check_reports_a_flipped_byte_in_a_model(builds, tmp_path):
    """ext4 reads a flipped data byte back silently; the boot self-check is what notices it."""
    disk = tmp_path / "rotten.img"
    data = bytearray((builds[0] / "disk.img").read_bytes())
    where = data.find(MODEL_MARKER)
    assert where > 0 and data.find(MODEL_MARKER, where + 1) == -1, "slot A holds the one copy of the model"
    data[where + 3] ^= 0x01
    disk.write_bytes(bytes(data))
    report = boot_test(disk, tmp_path, timeout_s=180)
    assert not report.ok
    assert "orbox self-check: FAIL" in report.verdict and "tiny-q8_0.gguf" in report.verdict


def test_squashfs_spec_file_build_is_reproducible(inputs, tmp_path):
    spec = tmp_path / "spec.toml"
    wheels = "".join(f'[[wheels]]\npath = "{p}"\nsha256 = "{hashlib.sha256(p.read_bytes()).hexdigest()}"\n'
                     for p in sorted(inputs["wheels"].glob("*.whl")))
    shutil.copytree(inputs["bundle"], tmp_path / "bundle")
    spec.write_text(f'profile = "dev"\nversion = "2.0.0"\nmin_version = "1.0.0"\nbundle = "bundle"\n'
                    f'rootfs_type = "squashfs"\nsource_date_epoch = {EPOCH}\nseed = "factory-7"\n{wheels}')
    outs = []
    for name in ("one", "two"):
        result = CliRunner().invoke(image, ["build", "--spec", str(spec), "--out", str(tmp_path / name),
                                            "--update-pki", str(inputs["pki"])])
        assert result.exit_code == 0, result.output
        outs.append(tmp_path / name)
    assert (outs[0] / "rootfs.squashfs").read_bytes()[:4] == b"hsqs"
    for name in ("disk.img", "rootfs.squashfs", "sbom.cdx.json", "build-record.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_bad_inputs_are_clear_errors(inputs, tmp_path, monkeypatch):
    wheel = sorted(inputs["wheels"].glob("orbox-*.whl"))[0]
    with pytest.raises(ImageError, match="sha256 .* spec pins 0000"):
        build_for_test(inputs, tmp_path / "a", wheels=[{"path": wheel, "sha256": "0" * 64}])
    with pytest.raises(ImageError, match="expected the orbox wheel"):
        build_for_test(inputs, tmp_path / "b", wheels=[{"path": p} for p in inputs["wheels"].glob("orbox_tinydep*")])
    with pytest.raises(ImageError, match="bundle is for profile 'dev', the image is for 'mini-avx2'|"
                                         "is for profile 'dev', the image is for 'mini-avx2'"):
        build_for_test(inputs, tmp_path / "c", profile="mini-avx2")
    with pytest.raises(ImageError, match="field version: .*PEP 440"):
        build_for_test(inputs, tmp_path / "d", version="one")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(image, ["build", "--profile", "dev", "--version", "1.0.0", "--bundle",
                                        str(inputs["bundle"]), "--out", str(tmp_path / "e"), "--wheel", str(wheel)])
    assert result.exit_code == 1
    assert "'genimage' not found" in result.output and "apt-get install genimage" in result.output
    assert not (tmp_path / "e").exists()


def test_spec_problems_name_the_file_and_field(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"profile = \"\xff\"\n")
    with pytest.raises(ImageError, match=f"{re.escape(str(binary))}: not UTF-8 text"):
        load_spec(binary, {})
    with pytest.raises(ImageError, match=r"^image spec: field version: required \(give --version or set it in the "
                                         r"spec\); field bundle: required \(give --bundle"):
        load_spec(None, {"profile": "dev"})
    result = CliRunner().invoke(image, ["build", "--out", str(tmp_path / "out"), "--spec", str(binary)])
    assert result.exit_code == 1 and "not UTF-8 text" in result.output and result.exception.code == 1
    assert not (tmp_path / "out").exists()


def test_demo_base_is_a_deterministic_busybox_rootfs(tmp_path):
    runner = CliRunner()
    for name in ("one.tar", "two.tar"):
        assert runner.invoke(image, ["demo-base", "--out", str(tmp_path / name), "--epoch", "5"]).exit_code == 0
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["sbin/init"].issym() and members["sbin/init"].linkname == "/bin/busybox"
    assert all(m.mtime == 5 and m.uid == 0 for m in members.values())
