"""Root filesystem images (ext4 or squashfs) that are byte-identical for the same staged tree.

ext4: mkfs.ext4 -d with a pinned mke2fs.conf (the host's defaults must not leak in), a UUID and
directory-hash seed from the spec, E2FSPROGS_FAKE_TIME for the superblock, then one debugfs pass
that sets owner, group, mode and all four times of every inode (e2fsprogs 1.47.0 copies atime
and ctime from the staging files). squashfs: mksquashfs with a pseudo file for owners and modes
and -all-time/-mkfs-time.
"""

from __future__ import annotations

import stat
from pathlib import Path

from image_build.errors import ImageError
from image_build.tools import run_tool
from image_build.tree import StagedTree

_MKE2FS_CONF = """\
[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
"""


def tree_size(tree: StagedTree) -> int:
    """Bytes of content, counting each file in whole 4 KiB blocks."""
    total = 0
    for _, staged in tree.entries():
        if staged.is_file() and not staged.is_symlink():
            total += -(-staged.stat().st_size // 4096) * 4096
        else:
            total += 4096
    return total


def make_ext4(
    tree: StagedTree,
    image: Path,
    *,
    size_bytes: int,
    fs_uuid: str,
    hash_seed: str,
    epoch: int,
    label: str,
    workdir: Path,
) -> None:
    conf = workdir / "mke2fs.conf"
    conf.write_text(_MKE2FS_CONF)
    env = {"MKE2FS_CONFIG": str(conf), "E2FSPROGS_FAKE_TIME": str(epoch), "TZ": "UTC"}
    image.unlink(missing_ok=True)
    run_tool(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            label,
            "-U",
            fs_uuid,
            "-E",
            f"hash_seed={hash_seed},root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
            "-d",
            tree.root,
            image,
            f"{size_bytes // 1024}k",
        ],
        env=env,
    )
    script = workdir / "fix-inodes.debugfs"
    script.write_text("".join(_debugfs_commands(tree, epoch)))
    run_tool(["debugfs", "-w", "-f", script, image], env=env)


def _debugfs_commands(tree: StagedTree, epoch: int) -> list[str]:
    commands = []
    for image_path, staged in tree.entries():
        meta = tree.meta_for(image_path, staged)
        if any(ch in image_path for ch in '"\n\\'):
            raise ImageError(f"image path {image_path!r}: quotes, backslashes and newlines are not supported")
        file_type = stat.S_IFMT(staged.lstat().st_mode)
        quoted = f'"{image_path}"'
        commands.append(f"sif {quoted} mode 0{file_type | meta.mode:o}\n")
        commands.append(f"sif {quoted} uid {meta.uid}\nsif {quoted} gid {meta.gid}\n")
        for field in ("atime", "ctime", "mtime", "crtime"):
            commands.append(f"sif {quoted} {field} {epoch}\n")
    for field in ("atime", "ctime", "mtime", "crtime"):  # lost+found is made by mkfs, not staged
        commands.append(f"sif /lost+found {field} {epoch}\n")
    return commands


def make_squashfs(tree: StagedTree, image: Path, *, epoch: int, workdir: Path) -> None:
    pseudo = workdir / "owners.pseudo"
    lines = []
    for image_path, staged in tree.entries():
        if image_path == "/":
            continue
        meta = tree.meta_for(image_path, staged)
        if any(ch in image_path for ch in '" \n\\'):
            raise ImageError(f"image path {image_path!r}: spaces, quotes and newlines are not supported")
        lines.append(f"{image_path.lstrip('/')} m {meta.mode:o} {meta.uid} {meta.gid}\n")
    pseudo.write_text("".join(lines))
    image.unlink(missing_ok=True)
    run_tool(
        [
            "mksquashfs",
            tree.root,
            image,
            "-noappend",
            "-no-progress",
            "-quiet",
            "-no-xattrs",
            "-comp",
            "gzip",
            "-processors",
            "1",
            "-all-time",
            str(epoch),
            "-mkfs-time",
            str(epoch),
            "-root-mode",
            "755",
            "-root-uid",
            "0",
            "-root-gid",
            "0",
            "-pf",
            pseudo,
        ]
    )
