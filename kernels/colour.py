"""RGB <-> NV12 (BT.709, limited range), the layout capture cards hand out.

The kernel works on NV12 natively; these conversions exist for tests, the synthetic suite and
video tools that need RGB on one side.
"""

from __future__ import annotations

import numpy as np

_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
LUMA_WEIGHTS = np.array([_KR, _KG, _KB], np.float32)  # BT.709, for RGB in the same scale as the result


def rgb_to_yuv_codes(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """Limited-range BT.709 Y, U, V codes (0..255 scale, unrounded) of one RGB colour given in 0..255."""
    r, g, b = (c / 255.0 for c in rgb)
    y = _KR * r + _KG * g + _KB * b
    return 16.0 + 219.0 * y, 128.0 + 224.0 * (b - y) / (2 * (1 - _KB)), 128.0 + 224.0 * (r - y) / (2 * (1 - _KR))


def rgb_to_nv12(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB (even H and W) -> uint8 (H*3/2)xW NV12."""
    height, width, _ = rgb.shape
    if height % 2 or width % 2:
        raise ValueError(f"NV12 needs an even width and height, got {width}x{height}")
    f = rgb.astype(np.float32) / 255.0
    y = _KR * f[..., 0] + _KG * f[..., 1] + _KB * f[..., 2]
    u = (f[..., 2] - y) / (2 * (1 - _KB))
    v = (f[..., 0] - y) / (2 * (1 - _KR))
    out = np.empty((height * 3 // 2, width), np.uint8)
    out[:height] = np.clip(np.rint(16 + 219 * y), 0, 255)
    u2 = u.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    v2 = v.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    uv = out[height:].reshape(height // 2, width // 2, 2)
    uv[..., 0] = np.clip(np.rint(128 + 224 * u2), 0, 255)
    uv[..., 1] = np.clip(np.rint(128 + 224 * v2), 0, 255)
    return out


def nv12_to_rgb(nv12: np.ndarray) -> np.ndarray:
    """uint8 (H*3/2)xW NV12 -> uint8 HxWx3 RGB (chroma upsampled by replication)."""
    rows, width = nv12.shape
    height = rows * 2 // 3
    y = (nv12[:height].astype(np.float32) - 16) / 219
    uv = nv12[height:].reshape(height // 2, width // 2, 2).astype(np.float32)
    u = np.repeat(np.repeat((uv[..., 0] - 128) / 224, 2, axis=0), 2, axis=1)
    v = np.repeat(np.repeat((uv[..., 1] - 128) / 224, 2, axis=0), 2, axis=1)
    r = y + 2 * (1 - _KR) * v
    b = y + 2 * (1 - _KB) * u
    g = (y - _KR * r - _KB * b) / _KG
    return np.clip(np.rint(np.stack([r, g, b], axis=-1) * 255), 0, 255).astype(np.uint8)
