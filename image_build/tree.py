"""The staged root filesystem: file contents on disk plus the owners and modes they must carry.

Contents are staged as ordinary files (a build need not run as root), while the owner, group and
mode that each path gets inside the image live in `meta`. The filesystem writers apply `meta`
and a fixed time to every inode, so the host's umask, user and clock never reach the image.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from image_build.errors import ImageError


@dataclass(frozen=True)
class Meta:
    uid: int = 0
    gid: int = 0
    mode: int = 0o644  # permission bits only; the type comes from the staged file


@dataclass
class StagedTree:
    root: Path
    meta: dict[str, Meta] = field(default_factory=dict)

    def path(self, image_path: str) -> Path:
        return self.root / _relative(image_path)

    def mkdir(self, image_path: str, mode: int = 0o755) -> Path:
        parts = PurePosixPath(_relative(image_path)).parts
        for depth in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:depth])
            (self.root / sub.lstrip("/")).mkdir(exist_ok=True)
            self.meta.setdefault(sub, Meta(mode=0o755))
        self.meta["/" + "/".join(parts)] = Meta(mode=mode)
        return self.path(image_path)

    def add_bytes(self, image_path: str, data: bytes, mode: int = 0o644) -> Path:
        target = self._prepare(image_path)
        target.write_bytes(data)
        self.meta[_absolute(image_path)] = Meta(mode=mode)
        return target

    def add_file(self, image_path: str, source: Path, mode: int = 0o644) -> Path:
        target = self._prepare(image_path)
        shutil.copyfile(source, target)
        self.meta[_absolute(image_path)] = Meta(mode=mode)
        return target

    def _prepare(self, image_path: str) -> Path:
        self.mkdir(str(PurePosixPath(_absolute(image_path)).parent))
        target = self.path(image_path)
        if target.is_symlink() or target.exists():
            target.unlink()
        return target

    def entries(self) -> list[tuple[str, Path]]:
        """Every path in the tree (image path, staged path), sorted, parents before children."""
        found = [("/", self.root)]
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                staged = Path(dirpath) / name
                found.append(("/" + staged.relative_to(self.root).as_posix(), staged))
        return sorted(found, key=lambda item: PurePosixPath(item[0]).parts)

    def meta_for(self, image_path: str, staged: Path) -> Meta:
        if image_path in self.meta:
            return self.meta[image_path]
        if staged.is_dir() and not staged.is_symlink():
            return Meta(mode=0o755)
        return Meta(mode=0o777 if staged.is_symlink() else 0o644)


def _relative(image_path: str) -> str:
    return _absolute(image_path).lstrip("/")


def _absolute(image_path: str) -> str:
    normalized = PurePosixPath("/") / image_path
    if ".." in normalized.parts:
        raise ImageError(f"image path {image_path!r} must not contain '..'")
    return str(normalized)


def extract_base(tarball: Path, tree: StagedTree) -> list[str]:
    """Unpack a vendor rootfs tarball into the tree, keeping its owners and modes in `meta`.

    Path traversal is refused (tarfile's tar filter does the checks); device nodes are skipped
    because devtmpfs provides /dev at boot. Returns the skipped member names.
    """
    skipped: list[str] = []

    def keep_ownership(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if member.isdev():
            skipped.append(member.name)
            return None
        safe = tarfile.tar_filter(member, dest)
        tree.meta[_absolute(member.name)] = Meta(
            uid=member.uid, gid=member.gid, mode=stat.S_IMODE(member.mode)
        )
        return safe.replace(
            mode=stat.S_IMODE(member.mode) | (0o700 if member.isdir() else 0o600),
            uid=None,
            gid=None,
            uname=None,
            gname=None,
            deep=False,
        )

    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(tree.root, filter=keep_ownership)
    except (OSError, tarfile.TarError) as exc:
        raise ImageError(f"{tarball}: cannot unpack the base rootfs tarball ({exc})") from exc
    return skipped
