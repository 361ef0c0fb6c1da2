# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython core of the dehaze kernel.

Every function works on caller-owned, preallocated buffers (no per-frame allocation) and releases
the GIL. Full-resolution work happens in exactly two passes over the frame:

1. `block_stats_*`: one read of the frame that reduces each s x s block to its mean and per-channel
   minimum (the dark channel prior commutes: min over a patch of min over channels).
2. `recover_*`: one fused read-modify-write pass that upsamples the guided-filter coefficients
   bilinearly, forms t = a * luma + b, and applies J = (I - A) / t + A.

Everything in between runs on the s-times subsampled grid, which is s^2 times smaller.
The per-row work is independent, so output is byte-identical for any thread count.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport sqrtf, floorf, ceilf, fminf, fmaxf, fabsf
from libc.string cimport memcpy

ctypedef unsigned char u8

cdef extern from *:
    const char* ORBOX_MARCH  # the -march this module was compiled for (setup.py)


def compiled_march():
    """The instruction-set level the kernels were compiled for, e.g. "x86-64-v3"."""
    return ORBOX_MARCH.decode()

# BT.709 luma weights and the limited-range (16..235 / 16..240) NV12 conversion.
cdef float KR = 0.2126
cdef float KG = 0.7152
cdef float KB = 0.0722
cdef float Y_SCALE = 255.0 / 219.0
cdef float C_SCALE = 255.0 / 224.0
cdef float CR_V = 1.5748
cdef float CG_U = 0.1873242
cdef float CG_V = 0.4681242
cdef float CB_U = 1.8556


cdef inline float _clampf(float v, float lo, float hi) noexcept nogil:
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


cdef inline u8 _to_u8(float v) noexcept nogil:
    if v <= 0.0:
        return 0
    if v >= 255.0:
        return 255
    return <u8>(v + 0.5)


# ------------------------------------------------------------------ pass 1: block statistics


cdef void _stats_rgb_row(const u8[:, ::1] frame, int gy, int s, int ri, int gi, int bi,
                         unsigned short* vsum, u8* vmin,
                         float[:, :, ::1] mean, float[:, :, ::1] mins, float[:, ::1] luma) noexcept nogil:
    # Vertical first: the s rows of this block row are folded into per-column sums and minima
    # with flat unit-stride loops (vectorised), then each block reduces s columns.
    cdef int height = frame.shape[0]
    cdef int n3 = frame.shape[1]
    cdef int width = n3 // 3
    cdef int gw = mean.shape[1]
    cdef int y0 = gy * s
    cdef int y1 = min(y0 + s, height)
    cdef int i, y, gx, x, x0, x1
    cdef const u8* row = &frame[y0, 0]
    cdef const u8* nxt
    cdef u8 low
    cdef const unsigned short* ps
    cdef const u8* pm
    cdef unsigned int sr, sg, sb
    cdef u8 mr, mg, mb
    cdef float n
    # Two rows per sweep: half the scratch-row loads and stores per frame byte.
    if y1 - y0 >= 2:
        nxt = &frame[y0 + 1, 0]
        for i in range(n3):
            vsum[i] = row[i] + nxt[i]
            vmin[i] = row[i] if row[i] < nxt[i] else nxt[i]
        y = y0 + 2
    else:
        for i in range(n3):
            vsum[i] = row[i]
            vmin[i] = row[i]
        y = y0 + 1
    while y + 1 < y1:
        row = &frame[y, 0]
        nxt = &frame[y + 1, 0]
        for i in range(n3):
            vsum[i] = vsum[i] + row[i] + nxt[i]
            low = row[i] if row[i] < nxt[i] else nxt[i]
            vmin[i] = vmin[i] if vmin[i] < low else low
        y = y + 2
    if y < y1:
        row = &frame[y, 0]
        for i in range(n3):
            vsum[i] = vsum[i] + row[i]
            vmin[i] = vmin[i] if vmin[i] < row[i] else row[i]
    for gx in range(gw):
        x0 = gx * s
        x1 = min(x0 + s, width)
        # Integer accumulators: one conversion per block instead of one per pixel.
        sr = 0
        sg = 0
        sb = 0
        mr = 255
        mg = 255
        mb = 255
        ps = vsum + 3 * x0
        pm = vmin + 3 * x0
        for x in range(x1 - x0):
            sr = sr + ps[3 * x + ri]
            sg = sg + ps[3 * x + gi]
            sb = sb + ps[3 * x + bi]
            mr = pm[3 * x + ri] if pm[3 * x + ri] < mr else mr
            mg = pm[3 * x + gi] if pm[3 * x + gi] < mg else mg
            mb = pm[3 * x + bi] if pm[3 * x + bi] < mb else mb
        n = (y1 - y0) * (x1 - x0)
        mean[gy, gx, 0] = sr / n
        mean[gy, gx, 1] = sg / n
        mean[gy, gx, 2] = sb / n
        mins[gy, gx, 0] = mr
        mins[gy, gx, 1] = mg
        mins[gy, gx, 2] = mb
        luma[gy, gx] = (KR * sr + KG * sg + KB * sb) / (255.0 * n)


def block_stats_rgb(const u8[:, ::1] frame, int s, int ri, int gi, int bi,
                    float[:, :, ::1] mean, float[:, :, ::1] mins, float[:, ::1] luma,
                    unsigned short[:, ::1] vsum, u8[:, ::1] vmin, int threads):
    """Per s x s block: mean and min of each channel (0..255), and mean BT.709 luma (0..1).

    `vsum`/`vmin` are (threads, 3 * width) scratch rows.
    """
    cdef int gy, tid
    cdef int gh = mean.shape[0]
    if threads > 1:
        for gy in prange(gh, nogil=True, schedule="static", num_threads=threads):
            tid = threadid()
            _stats_rgb_row(frame, gy, s, ri, gi, bi, &vsum[tid, 0], &vmin[tid, 0], mean, mins, luma)
    else:
        with nogil:
            for gy in range(gh):
                _stats_rgb_row(frame, gy, s, ri, gi, bi, &vsum[0, 0], &vmin[0, 0], mean, mins, luma)


cdef void _stats_nv12_row(const u8[:, ::1] frame, int gy, int s, int height, unsigned short* pair_sum,
                          u8* pair_min, float* acc,
                          float[:, :, ::1] mean, float[:, :, ::1] mins, float[:, ::1] luma) noexcept nogil:
    # Each chroma sample covers a 2x2 luma quad, so the RGB min over the quad is the luma min
    # plus that sample's chroma term: no per-pixel colour conversion is needed. Per chroma row,
    # flat unit-stride loops (vectorised) fold the two luma rows and compute every quad's RGB
    # minimum; only then does each block reduce its own samples. Sums stay raw code sums (exact
    # in float32) and are converted once per block, since the mean of an affine map is affine.
    # acc: 3 * (width / 2) quad minima, then 8 floats per block.
    cdef int width = frame.shape[1]
    cdef int half_w = width // 2
    cdef int gw = mean.shape[1]
    cdef int cy0 = (gy * s) // 2
    cdef int cy1 = min(cy0 + s // 2, height // 2)
    cdef int half_s = s // 2
    cdef int cyy, x, c, c0, c1, gx
    cdef const u8* y0
    cdef const u8* y1
    cdef const u8* uv
    cdef float u, v, qmin, ym, n
    cdef float* rq = acc
    cdef float* gq = acc + half_w
    cdef float* bq = acc + 2 * half_w
    cdef float* blocks = acc + 3 * half_w
    cdef float* blk
    for x in range(8 * gw):
        blocks[x] = 0.0
    for gx in range(gw):
        blocks[8 * gx + 4] = 1e9
        blocks[8 * gx + 5] = 1e9
        blocks[8 * gx + 6] = 1e9
    for cyy in range(cy0, cy1):
        y0 = &frame[2 * cyy, 0]
        y1 = &frame[2 * cyy + 1, 0]
        uv = &frame[height + cyy, 0]
        for x in range(width):
            pair_sum[x] = y0[x] + y1[x]
            pair_min[x] = y0[x] if y0[x] < y1[x] else y1[x]
        for c in range(half_w):
            u = (uv[2 * c] - 128.0) * C_SCALE
            v = (uv[2 * c + 1] - 128.0) * C_SCALE
            qmin = (min(pair_min[2 * c], pair_min[2 * c + 1]) - 16.0) * Y_SCALE
            rq[c] = qmin + CR_V * v
            gq[c] = qmin - CG_U * u - CG_V * v
            bq[c] = qmin + CB_U * u
        for gx in range(gw):
            blk = blocks + 8 * gx
            c0 = gx * half_s
            c1 = min(c0 + half_s, half_w)
            for c in range(c0, c1):
                blk[0] = blk[0] + (pair_sum[2 * c] + pair_sum[2 * c + 1])
                blk[1] = blk[1] + uv[2 * c]
                blk[2] = blk[2] + uv[2 * c + 1]
                blk[4] = min(blk[4], rq[c])
                blk[5] = min(blk[5], gq[c])
                blk[6] = min(blk[6], bq[c])
            blk[7] = blk[7] + (c1 - c0)
    for gx in range(gw):
        blk = blocks + 8 * gx
        n = blk[7]
        # per-sample means of Y (over its quad), U and V in full-range units; R, G, B follow
        ym = (blk[0] / (4.0 * n) - 16.0) * Y_SCALE
        u = (blk[1] / n - 128.0) * C_SCALE
        v = (blk[2] / n - 128.0) * C_SCALE
        mean[gy, gx, 0] = _clampf(ym + CR_V * v, 0.0, 255.0)
        mean[gy, gx, 1] = _clampf(ym - CG_U * u - CG_V * v, 0.0, 255.0)
        mean[gy, gx, 2] = _clampf(ym + CB_U * u, 0.0, 255.0)
        mins[gy, gx, 0] = _clampf(blk[4], 0.0, 255.0)
        mins[gy, gx, 1] = _clampf(blk[5], 0.0, 255.0)
        mins[gy, gx, 2] = _clampf(blk[6], 0.0, 255.0)
        luma[gy, gx] = _clampf(ym / 255.0, 0.0, 1.0)


def block_stats_nv12(const u8[:, ::1] frame, int s, int height,
                     float[:, :, ::1] mean, float[:, :, ::1] mins, float[:, ::1] luma,
                     unsigned short[:, ::1] pair_sum, u8[:, ::1] pair_min, float[:, ::1] acc, int threads):
    """NV12 twin of block_stats_rgb: the same statistics, in full-range RGB, read from Y and UV.

    Scratch: `pair_sum`/`pair_min` (threads, width), `acc` (threads, 3 * (width / 2) + 8 * grid width).
    """
    cdef int gy, tid
    cdef int gh = mean.shape[0]
    if threads > 1:
        for gy in prange(gh, nogil=True, schedule="static", num_threads=threads):
            tid = threadid()
            _stats_nv12_row(frame, gy, s, height, &pair_sum[tid, 0], &pair_min[tid, 0], &acc[tid, 0],
                            mean, mins, luma)
    else:
        with nogil:
            for gy in range(gh):
                _stats_nv12_row(frame, gy, s, height, &pair_sum[0, 0], &pair_min[0, 0], &acc[0, 0],
                                mean, mins, luma)


# ------------------------------------------------------------------ grid-level estimation


def disc_mask(float[:, ::1] luma, float threshold, float margin, u8[:, ::1] inside):
    """Find the scope's bright disc on the grid. Returns (cx, cy, r, bright_fraction) in grid units.

    The disc is taken as the circle with the bright cells' centroid and area; `inside` marks the
    cells at least `margin` cells inside it (clear of the optics' soft edge) for the statistics.
    """
    cdef int gh = luma.shape[0]
    cdef int gw = luma.shape[1]
    cdef int y, x
    cdef double count = 0.0, sx = 0.0, sy = 0.0
    cdef float cx, cy, r, ri, dx, dy
    with nogil:
        for y in range(gh):
            for x in range(gw):
                if luma[y, x] > threshold:
                    count = count + 1.0
                    sx = sx + x + 0.5
                    sy = sy + y + 0.5
    if count < 16:
        inside[:, :] = 0
        return (gw / 2.0, gh / 2.0, 0.0, 0.0)
    cx = sx / count
    cy = sy / count
    r = sqrtf(count / 3.14159265)
    ri = r - margin
    with nogil:
        for y in range(gh):
            dy = y + 0.5 - cy
            for x in range(gw):
                dx = x + 0.5 - cx
                inside[y, x] = 1 if dx * dx + dy * dy <= ri * ri else 0
    return (cx, cy, r, count / (gh * gw))


def airlight_votes(float[:, :, ::1] mean, float[:, :, ::1] mins, const u8[:, ::1] inside,
                   float saturation, short[:, ::1] votes, long[::1] hist):
    """Each usable cell's raw dark channel (0..255; -1 if it may not vote) and their histogram.

    Cells outside the disc and cells whose brightest mean channel is near saturation (speculars,
    polished instruments) are left out, so they cannot win the airlight vote.
    """
    cdef int gh = mean.shape[0]
    cdef int gw = mean.shape[1]
    cdef int y, x, d
    cdef float hi
    hist[:] = 0
    with nogil:
        for y in range(gh):
            for x in range(gw):
                hi = max(mean[y, x, 0], max(mean[y, x, 1], mean[y, x, 2]))
                if inside[y, x] and hi < saturation:
                    d = <int>min(mins[y, x, 0], min(mins[y, x, 1], mins[y, x, 2]))
                    votes[y, x] = d
                    hist[d] += 1
                else:
                    votes[y, x] = -1


def airlight_mean(float[:, :, ::1] mean, const short[:, ::1] votes, int min_dark):
    """Mean colour (0..255) of the cells whose vote is >= min_dark, and their count."""
    cdef int gh = mean.shape[0]
    cdef int gw = mean.shape[1]
    cdef int y, x
    cdef double sr = 0.0, sg = 0.0, sb = 0.0, n = 0.0
    with nogil:
        for y in range(gh):
            for x in range(gw):
                if votes[y, x] >= min_dark:
                    sr = sr + mean[y, x, 0]
                    sg = sg + mean[y, x, 1]
                    sb = sb + mean[y, x, 2]
                    n = n + 1.0
    if n == 0:
        return (0.0, 0.0, 0.0, 0)
    return (sr / n, sg / n, sb / n, int(n))


def normalized_dark(float[:, :, ::1] mins, const u8[:, ::1] inside, float ar, float ag, float ab,
                    float[:, ::1] dark):
    """min over channels of (block min / A): the dark channel of I / A on the grid.

    Cells outside the disc get a value above any real one, so the erosion that follows never
    lets the black vignette pull the dark channel down at the disc's edge.
    """
    cdef int gh = mins.shape[0]
    cdef int gw = mins.shape[1]
    cdef int y, x
    cdef float ir = 1.0 / ar, ig = 1.0 / ag, ib = 1.0 / ab
    with nogil:
        for y in range(gh):
            for x in range(gw):
                if inside[y, x]:
                    dark[y, x] = min(mins[y, x, 0] * ir, min(mins[y, x, 1] * ig, mins[y, x, 2] * ib))
                else:
                    dark[y, x] = 1e30


def min_filter(float[:, ::1] src, int radius, float[:, ::1] tmp, float[:, ::1] dst):
    """Separable (2r+1)^2 min filter (grey erosion); the window is clipped at the borders.

    Each direction is `radius` flat sweeps of "min with the neighbours k away", which vectorise.
    """
    cdef int gh = src.shape[0]
    cdef int gw = src.shape[1]
    cdef int y, x, k
    with nogil:
        for y in range(gh):
            for x in range(gw):
                tmp[y, x] = src[y, x]
            for k in range(1, radius + 1):
                for x in range(min(k, gw)):
                    if x + k < gw:
                        tmp[y, x] = fminf(tmp[y, x], src[y, x + k])
                for x in range(k, gw - k):
                    tmp[y, x] = fminf(tmp[y, x], fminf(src[y, x - k], src[y, x + k]))
                for x in range(max(k, gw - k), gw):
                    tmp[y, x] = fminf(tmp[y, x], src[y, x - k])
        for y in range(gh):
            for x in range(gw):
                dst[y, x] = tmp[y, x]
            for k in range(1, radius + 1):
                if y - k >= 0:
                    for x in range(gw):
                        dst[y, x] = fminf(dst[y, x], tmp[y - k, x])
                if y + k < gh:
                    for x in range(gw):
                        dst[y, x] = fminf(dst[y, x], tmp[y + k, x])


def masked_histogram(float[:, ::1] values, const u8[:, ::1] inside, float scale, long[::1] hist):
    """256-bin histogram of clamp(values * scale) over the cells inside the disc."""
    cdef int gh = values.shape[0]
    cdef int gw = values.shape[1]
    cdef int y, x, b
    hist[:] = 0
    with nogil:
        for y in range(gh):
            for x in range(gw):
                if inside[y, x]:
                    b = <int>_clampf(values[y, x] * scale, 0.0, 255.0)
                    hist[b] += 1


def transmission(float[:, ::1] dark, const u8[:, ::1] inside, float omega, float[:, ::1] t):
    """t = 1 - omega * dark inside the disc; outside, the inside mean, a neutral fill so the
    vignette edge does not drag the guided filter. Returns that mean."""
    cdef int gh = dark.shape[0]
    cdef int gw = dark.shape[1]
    cdef int y, x
    cdef double total = 0.0, n = 0.0
    cdef float fill
    with nogil:
        for y in range(gh):
            for x in range(gw):
                if inside[y, x]:
                    t[y, x] = 1.0 - omega * dark[y, x]
                    total = total + t[y, x]
                    n = n + 1.0
        fill = total / n if n > 0 else 1.0
        for y in range(gh):
            for x in range(gw):
                if not inside[y, x]:
                    t[y, x] = fill
    return fill


cdef inline void _box_border_step(float[:, :, ::1] src, float[:, :, ::1] tmp, float* run, int n, int y, int x,
                                  int r) noexcept nogil:
    # One step of the horizontal running sums where the window is clipped by the grid's edge.
    cdef int gw = src.shape[2]
    cdef int k
    cdef float inv = 1.0 / (min(x + r, gw - 1) - max(x - r, 0) + 1)
    for k in range(n):
        tmp[k, y, x] = run[k] * inv
        if x + r + 1 < gw:
            run[k] = run[k] + src[k, y, x + r + 1]
        if x - r >= 0:
            run[k] = run[k] - src[k, y, x - r]


cdef void _box_filter(float[:, :, ::1] src, int n, int r, float[:, :, ::1] tmp, float[::1] acc,
                      float[:, :, ::1] dst) noexcept nogil:
    # Separable running-sum box mean of planes 0..n-1 (n <= 4); windows are clipped at the
    # borders and normalised by their true size, so edges are not darkened. O(N) whatever r.
    # The horizontal running sums are serial chains, so the n planes advance together: n
    # independent chains per step keep the adder pipeline busy.
    cdef int gh = src.shape[1]
    cdef int gw = src.shape[2]
    cdef int y, x, k
    cdef int x_head = min(r + 1, gw)
    cdef int x_tail = max(gw - r - 1, x_head)
    cdef float inv_full = 1.0 / (2 * r + 1)
    cdef float inv
    cdef float run[4]
    for y in range(gh):
        for k in range(n):
            run[k] = 0.0
            for x in range(min(r, gw - 1) + 1):
                run[k] = run[k] + src[k, y, x]
        for x in range(x_head):
            _box_border_step(src, tmp, run, n, y, x, r)
        for x in range(x_head, x_tail):
            for k in range(n):
                tmp[k, y, x] = run[k] * inv_full
                run[k] = run[k] + src[k, y, x + r + 1] - src[k, y, x - r]
        for x in range(x_tail, gw):
            _box_border_step(src, tmp, run, n, y, x, r)
    for k in range(n):
        for x in range(gw):
            acc[x] = 0.0
        for y in range(min(r, gh - 1) + 1):
            for x in range(gw):
                acc[x] = acc[x] + tmp[k, y, x]
        for y in range(gh):
            inv = 1.0 / (min(y + r, gh - 1) - max(y - r, 0) + 1)
            for x in range(gw):
                dst[k, y, x] = acc[x] * inv
            if y + r + 1 < gh:
                for x in range(gw):
                    acc[x] = acc[x] + tmp[k, y + r + 1, x]
            if y - r >= 0:
                for x in range(gw):
                    acc[x] = acc[x] - tmp[k, y - r, x]


def guided_coefficients(float[:, ::1] guide, float[:, ::1] p, int r, float eps,
                        float[:, :, ::1] work, float[::1] acc, float[:, :, ::1] coeffs):
    """He's guided filter on the grid: box-averaged (a, b) into coeffs[0], coeffs[1], q = a * guide + b.

    `work` holds 12 grid-sized scratch planes. Upsampling (a, b) and applying them at full
    resolution is the 'fast guided filter' (He & Sun 2015); the caller does that in recover_*.
    """
    cdef int gh = guide.shape[0]
    cdef int gw = guide.shape[1]
    cdef int y, x
    cdef float[:, :, ::1] inputs = work[0:4]   # I, p, I*p, I*I
    cdef float[:, :, ::1] means = work[4:8]    # their box means
    cdef float[:, :, ::1] tmp = work[8:12]
    cdef float var_i, cov_ip, ak, mi, mp
    with nogil:
        for y in range(gh):
            for x in range(gw):
                inputs[0, y, x] = guide[y, x]
                inputs[1, y, x] = p[y, x]
                inputs[2, y, x] = guide[y, x] * p[y, x]
                inputs[3, y, x] = guide[y, x] * guide[y, x]
        _box_filter(inputs, 4, r, tmp, acc, means)
        for y in range(gh):
            for x in range(gw):
                mi = means[0, y, x]
                mp = means[1, y, x]
                var_i = means[3, y, x] - mi * mi
                cov_ip = means[2, y, x] - mi * mp
                ak = cov_ip / (var_i + eps)
                inputs[0, y, x] = ak
                inputs[1, y, x] = mp - ak * mi
        _box_filter(inputs, 2, r, tmp, acc, coeffs)


# ------------------------------------------------------------------ pass 2: fused recovery


cdef void _expand_row(const float* g, int gw, int s, int width, float* out) noexcept nogil:
    # Linear interpolation of one grid row to full width. Pixel x sits at grid coordinate
    # (x + 0.5) / s - 0.5, so for even s each grid interval j feeds the s pixels starting at
    # s * j + s / 2 with fixed weights (k + 0.5) / s. Steps 4 and 8 (the automatic ones) get
    # constant-count inner loops that gcc unrolls into vector stores.
    cdef int half = s // 2
    cdef int j, k, x
    cdef int full = min(gw - 1, (width - half) // s)  # intervals whose s pixels all exist
    cdef float base, step, inv_s = 1.0 / s
    for x in range(min(half, width)):
        out[x] = g[0]
    if s == 4:
        for j in range(full):
            base = g[j]
            step = g[j + 1] - g[j]
            for k in range(4):
                out[4 * j + 2 + k] = base + (k + 0.5) * 0.25 * step
    elif s == 8:
        for j in range(full):
            base = g[j]
            step = g[j + 1] - g[j]
            for k in range(8):
                out[8 * j + 4 + k] = base + (k + 0.5) * 0.125 * step
    else:
        for j in range(full):
            base = g[j]
            step = g[j + 1] - g[j]
            for k in range(s):
                out[s * j + half + k] = base + ((k + 0.5) * inv_s) * step
    for j in range(full, gw - 1):  # a last interval cut short by the frame's right edge
        base = g[j]
        step = g[j + 1] - g[j]
        for k in range(min(s, width - (s * j + half))):
            out[s * j + half + k] = base + ((k + 0.5) * inv_s) * step
    for x in range(max(0, s * (gw - 1) + half), width):
        out[x] = g[gw - 1]


cdef struct CoeffCache:
    # Per-thread full-width expansions of grid rows, two slots each for a and b: grid row k lives
    # in slot k % 2, so walking down the frame expands every grid row once. Expansions are a pure
    # function of the grid row, so the result does not depend on which thread got which rows.
    float* a_slot[2]
    float* b_slot[2]
    int* slot_row


cdef inline void _ensure_row(const float[:, ::1] a, const float[:, ::1] b, int k, int s, int width,
                             CoeffCache* cache) noexcept nogil:
    cdef int slot = k & 1
    if cache.slot_row[slot] != k:
        _expand_row(&a[k, 0], a.shape[1], s, width, cache.a_slot[slot])
        _expand_row(&b[k, 0], b.shape[1], s, width, cache.b_slot[slot])
        cache.slot_row[slot] = k


cdef void _coeff_rows(const float[:, ::1] a, const float[:, ::1] b, int y, int s, int width,
                      CoeffCache* cache, float* wy_out, const float** rows) noexcept nogil:
    # The expansions of the grid rows above and below pixel row y (rows[0..3] = a0, a1, b0, b1)
    # and the vertical weight between them.
    cdef int gh = a.shape[0]
    cdef float fy = (y + 0.5) / s - 0.5
    cdef int ya = <int>floorf(fy)
    cdef float wy = fy - ya
    cdef int yb
    if ya < 0:
        ya = 0
        wy = 0.0
    if ya >= gh - 1:
        ya = gh - 1
        wy = 0.0
    yb = min(ya + 1, gh - 1)
    _ensure_row(a, b, ya, s, width, cache)
    _ensure_row(a, b, yb, s, width, cache)
    wy_out[0] = wy
    rows[0] = cache.a_slot[ya & 1]
    rows[1] = cache.a_slot[yb & 1]
    rows[2] = cache.b_slot[ya & 1]
    rows[3] = cache.b_slot[yb & 1]


cdef inline CoeffCache _cache_at(float[:, ::1] rows, int first, int* slot_row) noexcept nogil:
    # Four scratch rows starting at `first`; slot_row (2 ints) persists across the thread's rows.
    cdef CoeffCache cache
    cache.a_slot[0] = &rows[first, 0]
    cache.a_slot[1] = &rows[first + 1, 0]
    cache.b_slot[0] = &rows[first + 2, 0]
    cache.b_slot[1] = &rows[first + 3, 0]
    cache.slot_row = slot_row
    return cache


cdef inline void _span(int y, int width, float cx, float cy, float r, int* xs, int* xe) noexcept nogil:
    # Columns [xs, xe) of row y that lie inside the scope disc (full-res units); r < 0 = whole row.
    cdef float dy, half
    if r < 0:
        xs[0] = 0
        xe[0] = width
        return
    dy = y + 0.5 - cy
    if dy * dy >= r * r:
        xs[0] = 0
        xe[0] = 0
        return
    half = sqrtf(r * r - dy * dy)
    xs[0] = max(0, <int>ceilf(cx - half - 0.5))
    xe[0] = min(width, <int>floorf(cx + half - 0.5) + 1)
    if xe[0] < xs[0]:
        xe[0] = xs[0]


cdef extern from "rgb_simd.h" nogil:
    void orbox_recover_rgb(const u8* sp, u8* dp, int xs, int xe, const float* a0, const float* a1,
                           const float* b0, const float* b1, float wy, const short* w, const short* air, float t0)


cdef void _recover_rgb_row(const u8[:, ::1] src, u8[:, ::1] dst, int y, int s,
                           const float[:, ::1] a, const float[:, ::1] b, CoeffCache* cache,
                           const short* weights, const short* airlight, float t0,
                           float cx, float cy, float r, bint in_place) noexcept nogil:
    # The pixel loop is rgb_simd.h: stride-3 bytes defeat gcc's vectoriser, so it deinterleaves
    # 16 pixels at a time with byte shuffles. Channel order is memory order: the caller permutes
    # the luma weights and the airlight for bgr24.
    cdef int width = src.shape[1] // 3
    cdef int xs, xe
    cdef const u8* sp = &src[y, 0]
    cdef u8* dp = &dst[y, 0]
    cdef float wy
    _span(y, width, cx, cy, r, &xs, &xe)
    if not in_place:
        if xs > 0:
            memcpy(dp, sp, 3 * xs)
        if xe < width:
            memcpy(dp + 3 * xe, sp + 3 * xe, 3 * (width - xe))
    if xe <= xs:
        return
    cdef const float* coeff[4]
    _coeff_rows(a, b, y, s, width, cache, &wy, coeff)
    orbox_recover_rgb(sp, dp, xs, xe, coeff[0], coeff[1], coeff[2], coeff[3], wy, weights, airlight, t0)


def recover_rgb(const u8[:, ::1] src, u8[:, ::1] dst, int s, int ri, int gi, int bi,
                const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] rows, int[::1] grid_rows,
                float ar, float ag, float ab, float t0, float cx, float cy, float r, bint in_place, int threads):
    """J = (I - A) / max(t, t0) + A with t = a(x) * luma(x) + b(x), for rgb24/bgr24 (A in 0..255).

    Scratch: `rows` (4 * threads, width), `grid_rows` (2 * threads,).
    """
    cdef int height = src.shape[0]
    cdef int y, tid
    cdef short weights[3]
    cdef short airlight[3]
    cdef CoeffCache cache
    # BT.709 luma in Q8 (54 + 183 + 19 = 256), the airlight rounded to 8-bit codes.
    weights[ri] = 54
    weights[gi] = 183
    weights[bi] = 19
    airlight[ri] = <short>(ar + 0.5)
    airlight[gi] = <short>(ag + 0.5)
    airlight[bi] = <short>(ab + 0.5)
    grid_rows[:] = -1
    if threads > 1:
        for y in prange(height, nogil=True, schedule="static", num_threads=threads):
            tid = threadid()
            cache = _cache_at(rows, 4 * tid, &grid_rows[2 * tid])
            _recover_rgb_row(src, dst, y, s, a, b, &cache, weights, airlight, t0, cx, cy, r, in_place)
    else:
        cache = _cache_at(rows, 0, &grid_rows[0])
        with nogil:
            for y in range(height):
                _recover_rgb_row(src, dst, y, s, a, b, &cache, weights, airlight, t0, cx, cy, r, in_place)


cdef inline u8 _apply_q8(int v, int airlight, int gain) noexcept nogil:
    # (v - A) * gain + A with gain = 1/t in Q8: the same rounded multiply-high as rgb_simd.h.
    cdef int d = (v - airlight) * 128
    cdef int out = ((d * gain + 0x4000) >> 15) + airlight
    return <u8>(0 if out < 0 else (255 if out > 255 else out))


cdef void _recover_luma_row(const u8[:, ::1] src, u8[:, ::1] dst, int y, int s,
                            const float[:, ::1] a, const float[:, ::1] b, CoeffCache* cache,
                            short* gains, int ay, float t0, float cx, float cy, float r,
                            bint in_place) noexcept nogil:
    # Luma of one NV12 row; leaves the Q8 gain per pixel in `gains` (256 = 1 outside the disc)
    # for the chroma row. Unit stride throughout, so gcc vectorises it.
    cdef int width = src.shape[1]
    cdef int xs, xe, x
    cdef const u8* sp = &src[y, 0]
    cdef u8* dp = &dst[y, 0]
    cdef float t, wy
    cdef short q
    _span(y, width, cx, cy, r, &xs, &xe)
    xs = xs & ~1
    xe = min(width, (xe + 1) & ~1)
    if not in_place:
        if xs > 0:
            memcpy(dp, sp, xs)
        if xe < width:
            memcpy(dp + xe, sp + xe, width - xe)
    for x in range(width):
        gains[x] = 256
    if xe <= xs:
        return
    cdef const float* coeff[4]
    _coeff_rows(a, b, y, s, width, cache, &wy, coeff)
    cdef const float* a0 = coeff[0]
    cdef const float* a1 = coeff[1]
    cdef const float* b0 = coeff[2]
    cdef const float* b1 = coeff[3]
    for x in range(xs, xe):
        t = (a0[x] + wy * (a1[x] - a0[x])) * ((sp[x] - 16.0) * (1.0 / 219.0)) + (b0[x] + wy * (b1[x] - b0[x]))
        t = fminf(fmaxf(t, t0), 1.0)
        q = <short>(256.0 / t + 0.5)
        gains[x] = q
        dp[x] = _apply_q8(sp[x], ay, q)


cdef void _recover_nv12_pair(const u8[:, ::1] src, u8[:, ::1] dst, int cyrow, int height, int s,
                             const float[:, ::1] a, const float[:, ::1] b, CoeffCache* cache,
                             short* g0, short* g1, int ay, int au, int av, float t0,
                             float cx, float cy, float r, bint in_place) noexcept nogil:
    # One chroma row and the two luma rows it covers. Chroma uses the mean gain (1/t) of its 2x2
    # quad, which is exact for the affine model averaged over the quad.
    cdef int width = src.shape[1]
    cdef int y = height + cyrow
    cdef int c, q
    cdef const u8* sp = &src[y, 0]
    cdef u8* dp = &dst[y, 0]
    _recover_luma_row(src, dst, 2 * cyrow, s, a, b, cache, g0, ay, t0, cx, cy, r, in_place)
    _recover_luma_row(src, dst, 2 * cyrow + 1, s, a, b, cache, g1, ay, t0, cx, cy, r, in_place)
    for c in range(width // 2):
        q = (g0[2 * c] + g0[2 * c + 1] + g1[2 * c] + g1[2 * c + 1] + 2) >> 2
        dp[2 * c] = _apply_q8(sp[2 * c], au, q)
        dp[2 * c + 1] = _apply_q8(sp[2 * c + 1], av, q)


def recover_nv12(const u8[:, ::1] src, u8[:, ::1] dst, int height, int s,
                 const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] rows, int[::1] grid_rows,
                 short[:, ::1] gains, float ay, float au, float av, float t0, float cx, float cy, float r,
                 bint in_place, int threads):
    """NV12 twin of recover_rgb: the affine model applied to Y and UV directly (A in limited-range YUV).

    Scratch: `rows` (4 * threads, width), `grid_rows` (2 * threads,), `gains` (2 * threads, width).
    """
    cdef int pairs = height // 2
    cdef int j, tid
    cdef int iy = <int>(ay + 0.5), iu = <int>(au + 0.5), iv = <int>(av + 0.5)
    cdef CoeffCache cache
    grid_rows[:] = -1
    if threads > 1:
        for j in prange(pairs, nogil=True, schedule="static", num_threads=threads):
            tid = threadid()
            cache = _cache_at(rows, 4 * tid, &grid_rows[2 * tid])
            _recover_nv12_pair(src, dst, j, height, s, a, b, &cache, &gains[2 * tid, 0], &gains[2 * tid + 1, 0],
                               iy, iu, iv, t0, cx, cy, r, in_place)
    else:
        cache = _cache_at(rows, 0, &grid_rows[0])
        with nogil:
            for j in range(pairs):
                _recover_nv12_pair(src, dst, j, height, s, a, b, &cache, &gains[0, 0], &gains[1, 0],
                                   iy, iu, iv, t0, cx, cy, r, in_place)


# ------------------------------------------------------------------ local veil against a per-cell clear reference

# Indices into the float parameter array of `local_veil` (built once per Dehazer from its Tuning).
cdef enum:
    V_T_MIN = 0        # lowest transmission a veil may have; an opaque object fits only with t ~ 0
    V_T_CLEAR = 1      # a cell whose t reaches this is clear
    V_TOL = 2          # model residual allowed, codes ...
    V_TOL_REL = 3      # ... plus this share of the cell's change
    V_CHROMA = 4       # reference channel spread (root of the summed squares) a cell needs to show a veil alone
    V_MARGIN = 5       # a cell votes for the airlight only if A exceeds each channel by this
    V_TINT = 6         # largest offset of an airlight channel from their mean, as a share of the mean
    V_FOLLOW = 7       # rate at which a clear cell's reference follows it
    V_ATTACK = 8       # gate rate towards 1 (smoke appears) ...
    V_RELEASE = 9      # ... and towards 0 (smoke gone)
    V_AIR_ALPHA = 10   # EMA weight of the newest airlight estimate
    V_STILL = 11       # a cell whose channels all moved less than this (codes) is unchanged
    V_PARAMS = 12

# Bits of the per-cell flags: veiled in the previous frame (coloured cell / grey cell); this frame's
# change fits the veil model.
cdef enum:
    F_STRONG = 1
    F_WEAK = 2
    F_FITS = 4

cdef int VEIL_MIN_VOTES = 4  # cells needed to (re-)estimate the airlight


cdef inline float _chroma2(const float* b) noexcept nogil:
    cdef float m = (b[0] + b[1] + b[2]) * (1.0 / 3.0)
    return (b[0] - m) * (b[0] - m) + (b[1] - m) * (b[1] - m) + (b[2] - m) * (b[2] - m)


cdef inline float _change(const float* b, const float* i) noexcept nogil:
    return fmaxf(fabsf(i[0] - b[0]), fmaxf(fabsf(i[1] - b[1]), fabsf(i[2] - b[2])))


cdef inline float _fit_t(const float* air, const float* b, const float* i, float* resid) noexcept nogil:
    # I = t * B + (1 - t) * A, least squares over the channels: A - I = t * (A - B). Returns t and
    # the largest channel residual. Channels where A is close to B carry no weight, as they should.
    cdef float s0 = air[0] - b[0], s1 = air[1] - b[1], s2 = air[2] - b[2]
    cdef float d0 = air[0] - i[0], d1 = air[1] - i[1], d2 = air[2] - i[2]
    cdef float den = s0 * s0 + s1 * s1 + s2 * s2
    cdef float t = 1.0
    if den > 1.0:
        t = (d0 * s0 + d1 * s1 + d2 * s2) / den
    resid[0] = fmaxf(fabsf(d0 - t * s0), fmaxf(fabsf(d1 - t * s1), fabsf(d2 - t * s2)))
    return t


cdef inline float _fit_grey(const float* b, const float* i, float* resid, float* veil_level) noexcept nogil:
    # Without a known airlight: I - B = u - k * B with one grey level a = u / k for all channels
    # (k = 1 - t). Identifiable only on coloured cells. Returns t = 1 - k.
    cdef float bm = (b[0] + b[1] + b[2]) * (1.0 / 3.0)
    cdef float e0 = i[0] - b[0], e1 = i[1] - b[1], e2 = i[2] - b[2]
    cdef float em = (e0 + e1 + e2) * (1.0 / 3.0)
    cdef float var_b = _chroma2(b)
    cdef float k = 0.0, u
    if var_b > 1e-6:
        k = -((b[0] - bm) * (e0 - em) + (b[1] - bm) * (e1 - em) + (b[2] - bm) * (e2 - em)) / var_b
    u = em + k * bm
    resid[0] = fmaxf(fabsf(e0 - u + k * b[0]), fmaxf(fabsf(e1 - u + k * b[1]), fabsf(e2 - u + k * b[2])))
    veil_level[0] = u / k if k > 1e-3 else 0.0
    return 1.0 - k


cdef void _move_airlight(const double* num, double kk, const float* p, float* air) noexcept nogil:
    # One alternating least-squares step, accumulated by the caller over the cells that fit a
    # moderate veil with t from the current A: A_c = sum k (I_c - t B_c) / sum k^2. The estimate
    # keeps a bounded tint around its grey level; A moves towards it by V_AIR_ALPHA.
    cdef int c
    cdef float m = <float>((num[0] + num[1] + num[2]) / (3.0 * kk))
    cdef float lo = m * (1.0 - p[V_TINT])
    cdef float hi = m * (1.0 + p[V_TINT])
    cdef float est
    for c in range(3):
        est = _clampf(_clampf(<float>(num[c] / kk), lo, hi), 64.0, 255.0)
        air[c] = air[c] + p[V_AIR_ALPHA] * (est - air[c])


cdef void _morph3(const u8[:, ::1] src, const u8[:, ::1] keep, u8[:, ::1] dst, bint erode,
                  int y0, int y1, int x0, int x1) noexcept nogil:
    # 3 x 3 erosion (outside the grid counts as 0) or dilation of the window [y0, y1) x [x0, x1);
    # a dilation only adds cells where `keep` is set (geodesic growth), and keeps those already set.
    cdef int gh = src.shape[0]
    cdef int gw = src.shape[1]
    cdef int y, x, dy, dx, yy, xx
    cdef u8 v
    for y in range(y0, y1):
        for x in range(x0, x1):
            if erode:
                v = 1
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        yy = y + dy
                        xx = x + dx
                        if yy < 0 or yy >= gh or xx < 0 or xx >= gw or not src[yy, xx]:
                            v = 0
            else:
                v = src[y, x]
                if not v and keep[y, x]:
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            yy = y + dy
                            xx = x + dx
                            if 0 <= yy < gh and 0 <= xx < gw and src[yy, xx]:
                                v = 1
            dst[y, x] = v


def local_veil(float[:, :, ::1] mean, const u8[:, ::1] inside, float[:, :, ::1] ref, float[:, ::1] gate,
               float[:, ::1] held, u8[:, ::1] flags, float[:, ::1] tfit, u8[:, :, ::1] masks,
               double[::1] airlight, const float[::1] params, float strength, float t0, int grow,
               float[:, ::1] t_local, float open_gate):
    """Per-cell veil of the current frame against each cell's clear reference; statistics only.

    Per cell, `ref` is the mean colour of the cell when last clear. A grey veil of airlight A gives
    I = t * B + (1 - t) * A, the same t for every channel; a grey instrument or an exposure change
    does not fit that on coloured tissue. A is pooled over the cells that fit (bootstrapped with a
    grey level, refined per channel with a bounded tint) and kept in `airlight` (index 3: known).
    A cell that has not changed from its reference (noise) is clear and costs no fit.
    Evidence is a veil in two frames in a row on coloured cells, opened 3 x 3 (a plume is a blob,
    the moving edge of an instrument a line), then grown up to `grow` cells into grey cells that fit
    the veil too (an instrument inside the plume). Each cell's gate rises fast and falls slowly;
    `t_local` = 1 - strength * gate * (1 - t) inside the disc, 1 outside, with t the cell's last
    measured t while its change fits the veil model (held through frames where it does not).

    The reference is held while a cell fits a veil, follows a cell that is as clear as it or
    clearer, and jumps to the current mean when the change is not a veil (a new object, motion); under
    an open gate it jumps to the current mean with the cell's held veil removed, so motion inside a
    plume does not make the veiled tissue the new clear reference.
    `masks` is (4, gh, gw) scratch. `open_gate` is the largest gate after the previous frame: with
    no gate open and no evidence, gates, t and `t_local` are left as they are (unused).
    Returns (smoke cells, cells that jumped, cells inside, max gate).
    """
    cdef int gh = mean.shape[0]
    cdef int gw = mean.shape[1]
    cdef int y, x, c, step, smoke_cells = 0, jumped = 0, count = 0, strong_cells = 0, votes = 0
    cdef int y0 = gh, y1 = 0, x0 = gw, x1 = 0
    cdef float air[3]
    cdef float t, k, resid, level, tol, change, chroma2, e, g, th, top = 0.0
    cdef double su = 0.0, sk = 0.0, kk = 0.0
    cdef double num[3]
    cdef bint known, coloured, brighter, consistent, veiled
    cdef const float* p = &params[0]
    cdef float* b
    cdef const float* i
    cdef u8 prev
    if params.shape[0] != V_PARAMS:
        raise ValueError(f"local_veil needs {V_PARAMS} parameters, got {params.shape[0]}")
    chroma2 = p[V_CHROMA] * p[V_CHROMA]
    with nogil:
        for c in range(3):
            air[c] = <float>airlight[c]
        known = airlight[3] > 0.0
        num[0] = 0.0
        num[1] = 0.0
        num[2] = 0.0
        for y in range(gh):
            for x in range(gw):
                masks[0, y, x] = 0
                masks[1, y, x] = 0
                prev = flags[y, x]
                flags[y, x] = 0
                tfit[y, x] = 1.0
                if not inside[y, x]:
                    continue
                count = count + 1
                b = &ref[y, x, 0]
                i = &mean[y, x, 0]
                change = _change(b, i)
                if change < p[V_STILL]:
                    flags[y, x] = F_FITS  # as clear as its reference, which stays as it is
                    continue
                tol = p[V_TOL] + p[V_TOL_REL] * change
                coloured = _chroma2(b) >= chroma2
                brighter = True
                if known:
                    t = _fit_t(air, b, i, &resid)
                    if (coloured and p[V_T_MIN] <= t <= p[V_T_CLEAR] and resid <= tol
                            and fminf(air[0] - b[0], fminf(air[1] - b[1], air[2] - b[2])) >= p[V_MARGIN]):
                        k = 1.0 - t
                        for c in range(3):
                            num[c] = num[c] + k * (i[c] - t * b[c])
                        kk = kk + k * k
                        votes = votes + 1
                elif coloured:
                    # No airlight yet: fit a grey veil of any level, and pool that level over the
                    # cells where it is a moderate veil brighter than the tissue under it
                    # (darkening and exposure changes are not); A is known from the next frame.
                    t = _fit_grey(b, i, &resid, &level)
                    brighter = level >= fmaxf(b[0], fmaxf(b[1], b[2])) + p[V_MARGIN]
                    if brighter and p[V_T_MIN] <= t <= p[V_T_CLEAR] and resid <= tol:
                        su = su + level * (1.0 - t)
                        sk = sk + (1.0 - t)
                        votes = votes + 1
                else:
                    t = 1.0
                    resid = 1e30
                consistent = resid <= tol
                veiled = consistent and brighter and p[V_T_MIN] <= t < p[V_T_CLEAR]
                tfit[y, x] = t
                if consistent and t >= p[V_T_MIN]:
                    flags[y, x] = F_FITS
                if veiled and coloured:
                    flags[y, x] = flags[y, x] | F_STRONG
                    if prev & F_STRONG:
                        masks[0, y, x] = 1
                        strong_cells = strong_cells + 1
                        y0 = min(y0, y)
                        y1 = max(y1, y + 1)
                        x0 = min(x0, x)
                        x1 = max(x1, x + 1)
                elif veiled and known:
                    flags[y, x] = flags[y, x] | F_WEAK
                    if prev & F_WEAK:
                        masks[1, y, x] = 1
                if consistent:
                    if t >= 1.0:
                        for c in range(3):
                            b[c] = b[c] + p[V_FOLLOW] * (i[c] - b[c])
                elif change > tol:
                    # Not a veil: a new object or motion. Under an open gate the veil is assumed to
                    # stay, so the new reference is the current mean with the held veil removed.
                    th = held[y, x] if known and gate[y, x] > 0.0 else 1.0
                    for c in range(3):
                        b[c] = _clampf((i[c] - (1.0 - th) * air[c]) / th, 0.0, 255.0)
                    jumped = jumped + 1
                else:
                    for c in range(3):
                        b[c] = b[c] + p[V_FOLLOW] * (i[c] - b[c])
        if known and votes >= VEIL_MIN_VOTES:
            _move_airlight(num, kk, p, air)  # for the next frame
        elif not known and votes >= VEIL_MIN_VOTES:
            air[0] = fminf(su / sk, 255.0)
            air[1] = air[0]
            air[2] = air[0]
            known = True
        if strong_cells:
            # Only the window around the evidence can change: the opening stays inside the evidence's
            # bounding box, the growth reaches `grow` cells past it.
            masks[2, :, :] = 0
            masks[3, :, :] = 0
            _morph3(masks[0], masks[0], masks[2], True, y0, y1, x0, x1)
            _morph3(masks[2], masks[0], masks[3], False, y0, y1, x0, x1)  # opening: dilated within itself
            for step in range(grow):
                y0 = max(y0 - 1, 0)
                y1 = min(y1 + 1, gh)
                x0 = max(x0 - 1, 0)
                x1 = min(x1 + 1, gw)
                _morph3(masks[3], masks[1], masks[2], False, y0, y1, x0, x1)
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        masks[3, y, x] = masks[2, y, x]
        for y in range(gh if strong_cells or open_gate > 0.0 else 0):
            for x in range(gw):
                e = 1.0 if strong_cells and masks[3, y, x] else 0.0
                g = gate[y, x]
                g = g + (p[V_ATTACK] if e > g else p[V_RELEASE]) * (e - g)
                if g < 0.01:
                    g = 0.0
                gate[y, x] = g
                if e > 0.0 or flags[y, x] & F_FITS:
                    # t follows the measurement whenever the veil model fits; the gate's slow release
                    # only bridges frames without evidence, it never keeps a stale t on a clear cell.
                    held[y, x] = _clampf(tfit[y, x], t0, 1.0)
                smoke_cells = smoke_cells + (e > 0.0)
                top = fmaxf(top, g)
                t_local[y, x] = 1.0 - strength * g * (1.0 - held[y, x]) if inside[y, x] else 1.0
        for c in range(3):
            airlight[c] = air[c]
        airlight[3] = 1.0 if known else 0.0
    return smoke_cells, jumped, count, top


def pin_clear_cells(const float[:, ::1] gate, float[:, ::1] a, float[:, ::1] b):
    """Guided-filter coefficients t = 0 * luma + 1 on every cell whose local gate is closed.

    The filter's window (many cells) would otherwise carry a local plume's correction into the
    clear view around it; pinned, it reaches at most one cell (the bilinear upsampling) past it.
    """
    cdef int gh = gate.shape[0]
    cdef int gw = gate.shape[1]
    cdef int y, x
    with nogil:
        for y in range(gh):
            for x in range(gw):
                if gate[y, x] <= 0.0:
                    a[y, x] = 0.0
                    b[y, x] = 1.0
