/* SIMD body of the rgb24/bgr24 recovery pass (see _dehaze.pyx, _recover_rgb_row).
 *
 * gcc cannot vectorise the stride-3 byte loads of packed RGB efficiently, which made that loop
 * the most expensive part of the kernel. Here 16 pixels (48 bytes) are deinterleaved with byte
 * shuffles, processed in 16-bit lanes and re-interleaved. The scalar function below is the exact
 * reference: same integer luma, same float operations in the same order (no FMA contraction:
 * setup.py passes -ffp-contract=off), same rounded multiply-high, so both paths give identical
 * bytes and the output does not depend on which pixels take which path.
 *
 * J = (I - A) * g + A, with g = 1 / max(t0, min(1, t)) in Q8 and t = a * luma + b, where a and b
 * blend two expanded grid rows: a = a0 + wy * (a1 - a0).
 */
#ifndef ORBOX_RGB_SIMD_H
#define ORBOX_RGB_SIMD_H

#include <stdint.h>

#define ORBOX_LUMA_SCALE (1.0f / 65280.0f) /* luma weights are Q8 and sum to 256: 255 * 256 */

static inline int16_t orbox_gain_q8(float a, float b, float luma16, float t0) {
    float t = a * (luma16 * ORBOX_LUMA_SCALE) + b;
    t = t < t0 ? t0 : (t > 1.0f ? 1.0f : t);
    return (int16_t)(256.0f / t + 0.5f);
}

static inline uint8_t orbox_apply(uint8_t v, int16_t airlight, int16_t gain) {
    int16_t d = (int16_t)((v - airlight) * 128);
    int out = (((int32_t)d * gain + 0x4000) >> 15) + airlight;
    return (uint8_t)(out < 0 ? 0 : (out > 255 ? 255 : out));
}

/* Pixels [xs, xe) of one row; coefficients are a0 + wy * (a1 - a0) and b0 + wy * (b1 - b0).
 * w[c] are the Q8 luma weights and air[c] the airlight, both in memory channel order. */
static inline void orbox_recover_rgb_scalar(const uint8_t* sp, uint8_t* dp, int xs, int xe,
                                            const float* a0, const float* a1, const float* b0, const float* b1,
                                            float wy, const int16_t* w, const int16_t* air, float t0) {
    for (int x = xs; x < xe; x++) {
        const uint8_t* p = sp + 3 * x;
        float luma = (float)(w[0] * p[0] + w[1] * p[1] + w[2] * p[2]);
        int16_t g = orbox_gain_q8(a0[x] + wy * (a1[x] - a0[x]), b0[x] + wy * (b1[x] - b0[x]), luma, t0);
        for (int c = 0; c < 3; c++) dp[3 * x + c] = orbox_apply(p[c], air[c], g);
    }
}

#if defined(__SSSE3__)
#include <tmmintrin.h>

static const char DEINT_R_a[16] = {0, 3, 6, 9, 12, 15, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80};
static const char DEINT_R_b[16] = {(char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, 2, 5, 8, 11, 14, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80};
static const char DEINT_R_c[16] = {(char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, 1, 4, 7, 10, 13};
static const char DEINT_G_a[16] = {1, 4, 7, 10, 13, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80};
static const char DEINT_G_b[16] = {(char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, 0, 3, 6, 9, 12, 15, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80};
static const char DEINT_G_c[16] = {(char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, 2, 5, 8, 11, 14};
static const char DEINT_B_a[16] = {2, 5, 8, 11, 14, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80};
static const char DEINT_B_b[16] = {(char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, 1, 4, 7, 10, 13, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80};
static const char DEINT_B_c[16] = {(char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, (char)0x80, 0, 3, 6, 9, 12, 15};
static const char INTER_R_a[16] = {0, (char)0x80, (char)0x80, 1, (char)0x80, (char)0x80, 2, (char)0x80, (char)0x80, 3, (char)0x80, (char)0x80, 4, (char)0x80, (char)0x80, 5};
static const char INTER_R_b[16] = {(char)0x80, (char)0x80, 6, (char)0x80, (char)0x80, 7, (char)0x80, (char)0x80, 8, (char)0x80, (char)0x80, 9, (char)0x80, (char)0x80, 10, (char)0x80};
static const char INTER_R_c[16] = {(char)0x80, 11, (char)0x80, (char)0x80, 12, (char)0x80, (char)0x80, 13, (char)0x80, (char)0x80, 14, (char)0x80, (char)0x80, 15, (char)0x80, (char)0x80};
static const char INTER_G_a[16] = {(char)0x80, 0, (char)0x80, (char)0x80, 1, (char)0x80, (char)0x80, 2, (char)0x80, (char)0x80, 3, (char)0x80, (char)0x80, 4, (char)0x80, (char)0x80};
static const char INTER_G_b[16] = {5, (char)0x80, (char)0x80, 6, (char)0x80, (char)0x80, 7, (char)0x80, (char)0x80, 8, (char)0x80, (char)0x80, 9, (char)0x80, (char)0x80, 10};
static const char INTER_G_c[16] = {(char)0x80, (char)0x80, 11, (char)0x80, (char)0x80, 12, (char)0x80, (char)0x80, 13, (char)0x80, (char)0x80, 14, (char)0x80, (char)0x80, 15, (char)0x80};
static const char INTER_B_a[16] = {(char)0x80, (char)0x80, 0, (char)0x80, (char)0x80, 1, (char)0x80, (char)0x80, 2, (char)0x80, (char)0x80, 3, (char)0x80, (char)0x80, 4, (char)0x80};
static const char INTER_B_b[16] = {(char)0x80, 5, (char)0x80, (char)0x80, 6, (char)0x80, (char)0x80, 7, (char)0x80, (char)0x80, 8, (char)0x80, (char)0x80, 9, (char)0x80, (char)0x80};
static const char INTER_B_c[16] = {10, (char)0x80, (char)0x80, 11, (char)0x80, (char)0x80, 12, (char)0x80, (char)0x80, 13, (char)0x80, (char)0x80, 14, (char)0x80, (char)0x80, 15};

/* Bytes picked from three vectors by three shuffle masks (0x80 = none), OR-ed: one 16-byte
 * channel out of 48 interleaved bytes, or 16 interleaved bytes out of three channels. */
static inline __m128i orbox_pick3(__m128i a, __m128i b, __m128i c, const char* ma, const char* mb,
                                  const char* mc) {
    __m128i pa = _mm_shuffle_epi8(a, _mm_loadu_si128((const __m128i*)ma));
    __m128i pb = _mm_shuffle_epi8(b, _mm_loadu_si128((const __m128i*)mb));
    __m128i pc = _mm_shuffle_epi8(c, _mm_loadu_si128((const __m128i*)mc));
    return _mm_or_si128(_mm_or_si128(pa, pb), pc);
}

/* (v - A) * g + A for 16 bytes of one channel, g as two i16x8 (pixels 0-7, 8-15). */
static inline __m128i orbox_apply16(__m128i v, __m128i air, __m128i g_lo, __m128i g_hi) {
    const __m128i zero = _mm_setzero_si128();
    __m128i lo = _mm_slli_epi16(_mm_sub_epi16(_mm_unpacklo_epi8(v, zero), air), 7);
    __m128i hi = _mm_slli_epi16(_mm_sub_epi16(_mm_unpackhi_epi8(v, zero), air), 7);
    lo = _mm_add_epi16(_mm_mulhrs_epi16(lo, g_lo), air);
    hi = _mm_add_epi16(_mm_mulhrs_epi16(hi, g_hi), air);
    return _mm_packus_epi16(lo, hi);
}

/* Gains of 4 pixels from their 16-bit luma (as i32x4). */
static inline __m128i orbox_gain4(__m128i luma32, const float* a0, const float* a1, const float* b0,
                                  const float* b1, __m128 wy, __m128 t0) {
    __m128 va0 = _mm_loadu_ps(a0), vb0 = _mm_loadu_ps(b0);
    __m128 a = _mm_add_ps(va0, _mm_mul_ps(wy, _mm_sub_ps(_mm_loadu_ps(a1), va0)));
    __m128 b = _mm_add_ps(vb0, _mm_mul_ps(wy, _mm_sub_ps(_mm_loadu_ps(b1), vb0)));
    __m128 l = _mm_mul_ps(_mm_cvtepi32_ps(luma32), _mm_set1_ps(ORBOX_LUMA_SCALE));
    __m128 t = _mm_add_ps(_mm_mul_ps(a, l), b);
    t = _mm_min_ps(_mm_max_ps(t, t0), _mm_set1_ps(1.0f));
    __m128 g = _mm_add_ps(_mm_div_ps(_mm_set1_ps(256.0f), t), _mm_set1_ps(0.5f));
    return _mm_cvttps_epi32(g);
}

#if defined(__AVX2__)
#include <immintrin.h>

/* The AVX2 path runs the SSSE3 block on two 16-pixel blocks at once, one per 128-bit lane (byte
 * shuffles work within lanes), so every operation and its rounding are the same as above. */
static inline __m256i orbox_load2(const uint8_t* lo, const uint8_t* hi) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i*)lo)),
                                   _mm_loadu_si128((const __m128i*)hi), 1);
}

static inline __m256 orbox_load2f(const float* lo, const float* hi) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(lo)), _mm_loadu_ps(hi), 1);
}

static inline __m256i orbox_pick3x2(__m256i a, __m256i b, __m256i c, const char* ma, const char* mb,
                                    const char* mc) {
    __m256i pa = _mm256_shuffle_epi8(a, _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)ma)));
    __m256i pb = _mm256_shuffle_epi8(b, _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)mb)));
    __m256i pc = _mm256_shuffle_epi8(c, _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)mc)));
    return _mm256_or_si256(_mm256_or_si256(pa, pb), pc);
}

/* Gains of pixels x+k..x+k+3 (lane 0) and x+16+k..x+19+k (lane 1). */
static inline __m256i orbox_gain4x2(__m256i luma32, const float* a0, const float* a1, const float* b0,
                                    const float* b1, int k, __m256 wy, __m256 t0) {
    __m256 va0 = orbox_load2f(a0 + k, a0 + 16 + k), vb0 = orbox_load2f(b0 + k, b0 + 16 + k);
    __m256 a = _mm256_add_ps(va0, _mm256_mul_ps(wy, _mm256_sub_ps(orbox_load2f(a1 + k, a1 + 16 + k), va0)));
    __m256 b = _mm256_add_ps(vb0, _mm256_mul_ps(wy, _mm256_sub_ps(orbox_load2f(b1 + k, b1 + 16 + k), vb0)));
    __m256 l = _mm256_mul_ps(_mm256_cvtepi32_ps(luma32), _mm256_set1_ps(ORBOX_LUMA_SCALE));
    __m256 t = _mm256_add_ps(_mm256_mul_ps(a, l), b);
    t = _mm256_min_ps(_mm256_max_ps(t, t0), _mm256_set1_ps(1.0f));
    return _mm256_cvttps_epi32(_mm256_add_ps(_mm256_div_ps(_mm256_set1_ps(256.0f), t), _mm256_set1_ps(0.5f)));
}

static inline __m256i orbox_apply16x2(__m256i v, __m256i air, __m256i g_lo, __m256i g_hi) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i lo = _mm256_slli_epi16(_mm256_sub_epi16(_mm256_unpacklo_epi8(v, zero), air), 7);
    __m256i hi = _mm256_slli_epi16(_mm256_sub_epi16(_mm256_unpackhi_epi8(v, zero), air), 7);
    lo = _mm256_add_epi16(_mm256_mulhrs_epi16(lo, g_lo), air);
    hi = _mm256_add_epi16(_mm256_mulhrs_epi16(hi, g_hi), air);
    return _mm256_packus_epi16(lo, hi);
}

static inline void orbox_store2(uint8_t* lo, uint8_t* hi, __m256i v) {
    _mm_storeu_si128((__m128i*)lo, _mm256_castsi256_si128(v));
    _mm_storeu_si128((__m128i*)hi, _mm256_extracti128_si256(v, 1));
}

/* 32 pixels per step from xs; returns the first pixel it did not do. */
static inline int orbox_recover_rgb_avx2(const uint8_t* sp, uint8_t* dp, int xs, int xe,
                                         const float* a0, const float* a1, const float* b0, const float* b1,
                                         float wy, const int16_t* w, const int16_t* air, float t0) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256 vwy = _mm256_set1_ps(wy), vt0 = _mm256_set1_ps(t0);
    const __m256i w0 = _mm256_set1_epi16(w[0]), w1 = _mm256_set1_epi16(w[1]), w2 = _mm256_set1_epi16(w[2]);
    const __m256i air0 = _mm256_set1_epi16(air[0]), air1 = _mm256_set1_epi16(air[1]);
    const __m256i air2 = _mm256_set1_epi16(air[2]);
    int x = xs;
    for (; x + 32 <= xe; x += 32) {
        const uint8_t* p = sp + 3 * x;
        __m256i va = orbox_load2(p, p + 48), vb = orbox_load2(p + 16, p + 64), vc = orbox_load2(p + 32, p + 80);
        __m256i c0 = orbox_pick3x2(va, vb, vc, DEINT_R_a, DEINT_R_b, DEINT_R_c);
        __m256i c1 = orbox_pick3x2(va, vb, vc, DEINT_G_a, DEINT_G_b, DEINT_G_c);
        __m256i c2 = orbox_pick3x2(va, vb, vc, DEINT_B_a, DEINT_B_b, DEINT_B_c);
        __m256i l_lo = _mm256_add_epi16(
            _mm256_add_epi16(_mm256_mullo_epi16(_mm256_unpacklo_epi8(c0, zero), w0),
                             _mm256_mullo_epi16(_mm256_unpacklo_epi8(c1, zero), w1)),
            _mm256_mullo_epi16(_mm256_unpacklo_epi8(c2, zero), w2));
        __m256i l_hi = _mm256_add_epi16(
            _mm256_add_epi16(_mm256_mullo_epi16(_mm256_unpackhi_epi8(c0, zero), w0),
                             _mm256_mullo_epi16(_mm256_unpackhi_epi8(c1, zero), w1)),
            _mm256_mullo_epi16(_mm256_unpackhi_epi8(c2, zero), w2));
        const float *ca0 = a0 + x, *ca1 = a1 + x, *cb0 = b0 + x, *cb1 = b1 + x;
        __m256i g0 = orbox_gain4x2(_mm256_unpacklo_epi16(l_lo, zero), ca0, ca1, cb0, cb1, 0, vwy, vt0);
        __m256i g1 = orbox_gain4x2(_mm256_unpackhi_epi16(l_lo, zero), ca0, ca1, cb0, cb1, 4, vwy, vt0);
        __m256i g2 = orbox_gain4x2(_mm256_unpacklo_epi16(l_hi, zero), ca0, ca1, cb0, cb1, 8, vwy, vt0);
        __m256i g3 = orbox_gain4x2(_mm256_unpackhi_epi16(l_hi, zero), ca0, ca1, cb0, cb1, 12, vwy, vt0);
        __m256i g_lo = _mm256_packs_epi32(g0, g1), g_hi = _mm256_packs_epi32(g2, g3);
        __m256i o0 = orbox_apply16x2(c0, air0, g_lo, g_hi);
        __m256i o1 = orbox_apply16x2(c1, air1, g_lo, g_hi);
        __m256i o2 = orbox_apply16x2(c2, air2, g_lo, g_hi);
        uint8_t* q = dp + 3 * x;
        orbox_store2(q, q + 48, orbox_pick3x2(o0, o1, o2, INTER_R_a, INTER_G_a, INTER_B_a));
        orbox_store2(q + 16, q + 64, orbox_pick3x2(o0, o1, o2, INTER_R_b, INTER_G_b, INTER_B_b));
        orbox_store2(q + 32, q + 80, orbox_pick3x2(o0, o1, o2, INTER_R_c, INTER_G_c, INTER_B_c));
    }
    return x;
}
#endif

static inline void orbox_recover_rgb(const uint8_t* sp, uint8_t* dp, int xs, int xe,
                                     const float* a0, const float* a1, const float* b0, const float* b1,
                                     float wy, const int16_t* w, const int16_t* air, float t0) {
#if defined(__AVX2__)
    xs = orbox_recover_rgb_avx2(sp, dp, xs, xe, a0, a1, b0, b1, wy, w, air, t0);
#endif
    const __m128i zero = _mm_setzero_si128();
    const __m128 vwy = _mm_set1_ps(wy), vt0 = _mm_set1_ps(t0);
    const __m128i w0 = _mm_set1_epi16(w[0]), w1 = _mm_set1_epi16(w[1]), w2 = _mm_set1_epi16(w[2]);
    const __m128i air0 = _mm_set1_epi16(air[0]), air1 = _mm_set1_epi16(air[1]), air2 = _mm_set1_epi16(air[2]);
    int x = xs;
    for (; x + 16 <= xe; x += 16) {
        const uint8_t* p = sp + 3 * x;
        __m128i va = _mm_loadu_si128((const __m128i*)p);
        __m128i vb = _mm_loadu_si128((const __m128i*)(p + 16));
        __m128i vc = _mm_loadu_si128((const __m128i*)(p + 32));
        __m128i c0 = orbox_pick3(va, vb, vc, DEINT_R_a, DEINT_R_b, DEINT_R_c);
        __m128i c1 = orbox_pick3(va, vb, vc, DEINT_G_a, DEINT_G_b, DEINT_G_c);
        __m128i c2 = orbox_pick3(va, vb, vc, DEINT_B_a, DEINT_B_b, DEINT_B_c);
        /* 16-bit luma: sum of Q8 weights is 256, so the maximum 65280 fits an unsigned lane. */
        __m128i l_lo = _mm_add_epi16(_mm_add_epi16(_mm_mullo_epi16(_mm_unpacklo_epi8(c0, zero), w0),
                                                   _mm_mullo_epi16(_mm_unpacklo_epi8(c1, zero), w1)),
                                     _mm_mullo_epi16(_mm_unpacklo_epi8(c2, zero), w2));
        __m128i l_hi = _mm_add_epi16(_mm_add_epi16(_mm_mullo_epi16(_mm_unpackhi_epi8(c0, zero), w0),
                                                   _mm_mullo_epi16(_mm_unpackhi_epi8(c1, zero), w1)),
                                     _mm_mullo_epi16(_mm_unpackhi_epi8(c2, zero), w2));
        __m128i g0 = orbox_gain4(_mm_unpacklo_epi16(l_lo, zero), a0 + x, a1 + x, b0 + x, b1 + x, vwy, vt0);
        __m128i g1 = orbox_gain4(_mm_unpackhi_epi16(l_lo, zero), a0 + x + 4, a1 + x + 4, b0 + x + 4, b1 + x + 4,
                                 vwy, vt0);
        __m128i g2 = orbox_gain4(_mm_unpacklo_epi16(l_hi, zero), a0 + x + 8, a1 + x + 8, b0 + x + 8, b1 + x + 8,
                                 vwy, vt0);
        __m128i g3 = orbox_gain4(_mm_unpackhi_epi16(l_hi, zero), a0 + x + 12, a1 + x + 12, b0 + x + 12,
                                 b1 + x + 12, vwy, vt0);
        __m128i g_lo = _mm_packs_epi32(g0, g1), g_hi = _mm_packs_epi32(g2, g3);
        __m128i o0 = orbox_apply16(c0, air0, g_lo, g_hi);
        __m128i o1 = orbox_apply16(c1, air1, g_lo, g_hi);
        __m128i o2 = orbox_apply16(c2, air2, g_lo, g_hi);
        __m128i oa = orbox_pick3(o0, o1, o2, INTER_R_a, INTER_G_a, INTER_B_a);
        __m128i ob = orbox_pick3(o0, o1, o2, INTER_R_b, INTER_G_b, INTER_B_b);
        __m128i oc = orbox_pick3(o0, o1, o2, INTER_R_c, INTER_G_c, INTER_B_c);
        _mm_storeu_si128((__m128i*)(dp + 3 * x), oa);
        _mm_storeu_si128((__m128i*)(dp + 3 * x + 16), ob);
        _mm_storeu_si128((__m128i*)(dp + 3 * x + 32), oc);
    }
    orbox_recover_rgb_scalar(sp, dp, x, xe, a0, a1, b0, b1, wy, w, air, t0);
}
#else
#define orbox_recover_rgb orbox_recover_rgb_scalar
#endif

#endif
