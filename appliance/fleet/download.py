"""Fetch one artifact so that only a complete file with the sha256 hawkBit gave ever reaches RAUC.

Bytes go to `<sha256>.part`; a broken connection resumes from its end with an HTTP Range request
(hawkBit serves RFC 7233 ranges), with capped exponential backoff between attempts. Only after the
size and the sha256 match is the file fsync'd and renamed to `<sha256>.raucb`; a mismatch deletes
the partial file, so the next attempt starts clean.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from appliance.fleet.ddi import DdiClient, DdiError
from primitives.artifacts import file_digest
from primitives.atomic import fsync_dir

log = logging.getLogger("orbox.fleet")
CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-\d+/(\d+|\*)$")


class DownloadError(Exception):
    """The artifact could not be fetched in the allowed attempts, or its bytes are not the ones announced."""


def fetch_artifact(client: DdiClient, url: str, sha256: str, size: int | None, directory: Path, *,
                   attempts: int, backoff_s: float, backoff_max_s: float,
                   sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download `url` into `directory`, resuming and retrying; return the verified file."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{sha256}.raucb"
    if final.is_file() and file_digest(final).sha256 == sha256:
        return final
    part = directory / f"{sha256}.part"
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            _fetch_into(client, url, part)
        except DdiError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429):
                raise DownloadError(f"{exc}") from None  # refused, not flaky: retrying would not help
            log.warning("fleet: download attempt %d/%d stopped at %d bytes: %s", attempt, attempts,
                        part.stat().st_size if part.exists() else 0, exc)
            if attempt < attempts:
                sleep(delay)
                delay = min(delay * 2, backoff_max_s)
            continue
        got = part.stat().st_size
        if size is not None and got != size:
            part.unlink()
            raise DownloadError(f"{url}: expected {size} bytes, got {got}; the partial file was deleted")
        digest = file_digest(part).sha256
        if digest != sha256:
            part.unlink()
            raise DownloadError(f"{url}: sha256 {digest} does not match the {sha256} the server announced; "
                                f"the file was deleted and never given to RAUC")
        os.replace(part, final)
        fsync_dir(directory)
        return final
    raise DownloadError(f"{url}: no complete download after {attempts} attempts")


def _fetch_into(client: DdiClient, url: str, part: Path) -> None:
    """Append the rest of the artifact to `part` (Range from its current size); fsync before returning."""
    have = part.stat().st_size if part.exists() else 0
    response = client.open(url, {"Range": f"bytes={have}-"} if have else None)
    with response:
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise DdiError(f"GET {url}: asked for bytes {have}- and got Content-Range "
                               f"{response.headers.get('Content-Range')!r}")
            mode = "ab"
        else:
            mode = "wb"  # the server ignored the Range header and sends the whole file: start over
        announced = response.headers.get("Content-Length")
        received = 0
        with open(part, mode) as out:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    received += len(block)
            except (OSError, http.client.HTTPException) as exc:  # reset or timeout: keep what arrived
                raise DdiError(f"GET {url}: connection lost after {received} bytes ({exc})") from None
            finally:
                out.flush()
                os.fsync(out.fileno())
        if announced is not None and received < int(announced):  # urllib returns a short body without error
            raise DdiError(f"GET {url}: connection closed after {received} of {announced} bytes")

