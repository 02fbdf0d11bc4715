// Fused reproducible kernels for compute/_repops.py and compute/_prims.py (CPU, float32).
//
// Each function performs, per output element, exactly the IEEE 754 operations of the pure
// torch definition in _repops.py / _prims.py, in the same order: correctly rounded + - * /
// and sqrt, exact comparisons and moves, and the fixed pairwise tree of `rsum`. Compiled (see
// FLAGS in _native.py) with -O3 -ffp-contract=off -fno-fast-math -fno-trapping-math (no code
// reads FP exception flags, so only those may change) for the baseline ISA (no -march): no
// fused multiply-add, no reassociation, no flush-to-zero, and no threads, so the bits do not
// depend on the thread count, ATEN_CPU_CAPABILITY or the CPU (vectorised IEEE + - * / sqrt
// round each lane exactly like scalar code). The only non-elementwise
// step of a product, the GEMM of exact integers, stays in torch (exact in any order): float64,
// or int8 limbs (axl_limbs, axl_limb_sum) through torch._int_mm with AXL_INT_GEMM=1.
// tests/compute/test_native.py checks every kernel against the torch definition bit for bit.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using i64 = int64_t;

constexpr float kClamp = 0x1p-100f;
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = (float)1.428606765330187045e-06;
constexpr float kLog2e = (float)1.4426950408889634;
const float kExpC[8] = {(float)(1.0 / 5040), (float)(1.0 / 720), (float)(1.0 / 120),
                        (float)(1.0 / 24),   (float)(1.0 / 6),   0.5f,
                        1.0f,                1.0f};

inline bool isnan_f(float x) { return x != x; }

// Round half to even (torch.round) without libm: exact in the default rounding mode, since
// (a + 2**23) - 2**23 rounds a in [0, 2**23) to an integer once; larger floats are integers.
inline float round_f(float v) {
  float a = std::fabs(v);
  float r = (a + 0x1p23f) - 0x1p23f;
  r = a < 0x1p23f ? r : a;  // a >= 2**23 (or inf) is an integer; NaN compares false: stays
  return std::copysign(r, v);
}

inline float pow2_f(float n) {
  // ((int32(n) + 127) << 23) as float bits; n is integral in [-126, 127] for finite input.
  uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// _repops.rexp, branch-free so that loops over it vectorise. clamp as torch.clamp (NaN stays
// NaN: both comparisons are false); a NaN n is replaced by 0 before the integer conversion,
// and p is NaN then anyway, so the product is NaN as in torch.
inline float rexp1(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float n = round_f(x * kLog2e);
  float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = r * kExpC[0] + kExpC[1];
  for (int i = 2; i < 8; ++i) p = p * r + kExpC[i];
  float nn = n == n ? n : 0.0f;
  return p * pow2_f(nn);
}

inline float rlog1(float x) {
  int e = 0;
  float mant = std::frexp(x, &e);
  bool small = mant < (float)0.7071067811865476;
  if (small) mant = mant * 2.0f;
  float ef = (float)(e - (small ? 1 : 0));
  float f = mant - 1.0f;
  float s = f / (f + 2.0f);
  float s2 = s * s;
  float p = s2 * (float)(2.0 / 11.0) + (float)(2.0 / 9.0);
  const float c[4] = {(float)(2.0 / 7.0), (float)(2.0 / 5.0), (float)(2.0 / 3.0), 2.0f};
  for (float ci : c) p = p * s2 + ci;
  float t = p * s + ef * kLn2Lo;
  return ef * kLn2Hi + t;
}

// amax with NaN propagation, then + 0.0 (canonical zero): _repops.rmax.
inline float rmax_row(const float* x, i64 n, i64 stride) {
  float m = x[0];
  for (i64 k = 1; k < n; ++k) {
    float v = x[k * stride];
    if (isnan_f(m)) break;
    if (v > m || isnan_f(v)) m = v;
  }
  return m + 0.0f;
}

// _repops.rsum over a (n, inner) block in place: level by level, x[:h] + x[h:2h], odd tail kept.
// On return buf[0:inner] holds the sums.
void tree_inplace(float* buf, i64 n, i64 inner) {
  while (n > 1) {
    i64 h = n / 2;
    for (i64 i = 0; i < h * inner; ++i) buf[i] = buf[i] + buf[i + h * inner];
    if (n % 2) std::memmove(buf + h * inner, buf + 2 * h * inner, sizeof(float) * inner);
    n = h + n % 2;
  }
}

// Tree sum of one contiguous row of length n (scratch of n floats).
inline float tree_row(const float* x, i64 n, float* scratch) {
  std::memcpy(scratch, x, sizeof(float) * n);
  tree_inplace(scratch, n, 1);
  return scratch[0];
}

// Layer norm statistics of one row: xhat (out) and std, as _prims._ln_hat.
inline float ln_hat_row(const float* x, i64 d, float eps, float* xhat, float* scratch) {
  float df = (float)d;
  float mean = tree_row(x, d, scratch) / df;
  for (i64 k = 0; k < d; ++k) xhat[k] = x[k] - mean;
  for (i64 k = 0; k < d; ++k) scratch[k] = xhat[k] * xhat[k];
  tree_inplace(scratch, d, 1);
  float sd = std::sqrt(scratch[0] / df + eps);
  for (i64 k = 0; k < d; ++k) xhat[k] = xhat[k] / sd;
  return sd;
}

}  // namespace

extern "C" {

// The scale of a row/column from the bit pattern of its max|x| (_repops._quantise): clamp to
// 2**-100, p = m / frexp mantissa (exactly 2**e), r = 2**bits / p (float32), s = p * 2**-bits.
inline void quant_scale(uint32_t mbits, float top, double down, float* r, double* s) {
  float mm;
  std::memcpy(&mm, &mbits, sizeof mm);
  if (!isnan_f(mm) && mm < kClamp) mm = kClamp;
  int e = 0;
  float mant = std::frexp(mm, &e);
  float p = mm / mant;
  *r = top / p;
  *s = (double)p * down;
}

// Block-floating-point quantisation of a contiguous (B, R, C) float32 tensor
// (_repops._quantise): axis 1 reduces over C (one scale per row), axis 0 over R (one per
// column). q is a contiguous (B, R, C) float64 tensor of integers, s holds the float64 scales
// p * 2**-bits ((B, R) or (B, C)). max|x| is taken on the bit patterns of |x| as unsigned
// integers: for non-NaN floats their order is the float order, and any NaN lies above inf,
// so a NaN anywhere gives a NaN maximum as amax does (NaN payloads are not part of any hash).
void axl_quant(const float* x, i64 nb, i64 nr, i64 nc, int axis, int bits, double* q,
               double* s) {
  const float top = std::ldexp(1.0f, bits);
  const double down = std::ldexp(1.0, -bits);
  const i64 ns = axis == 1 ? nr : nc;
  std::vector<uint32_t> m(ns);
  std::vector<float> r(ns);
  for (i64 b = 0; b < nb; ++b) {
    const float* xb = x + b * nr * nc;
    double* qb = q + b * nr * nc;
    for (i64 i = 0; i < ns; ++i) m[i] = 0;
    for (i64 i = 0; i < nr; ++i) {
      const uint32_t* row = reinterpret_cast<const uint32_t*>(xb + i * nc);
      if (axis == 1) {
        uint32_t mx = 0;
        for (i64 k = 0; k < nc; ++k) {
          uint32_t v = row[k] & 0x7FFFFFFFu;
          mx = v > mx ? v : mx;
        }
        m[i] = mx;
      } else {
        uint32_t* mm = m.data();
        for (i64 k = 0; k < nc; ++k) {
          uint32_t v = row[k] & 0x7FFFFFFFu;
          mm[k] = v > mm[k] ? v : mm[k];
        }
      }
    }
    for (i64 i = 0; i < ns; ++i) quant_scale(m[i], top, down, &r[i], &s[b * ns + i]);
    for (i64 i = 0; i < nr; ++i) {
      const float* row = xb + i * nc;
      double* qrow = qb + i * nc;
      if (axis == 1) {
        const float ri = r[i];
        for (i64 k = 0; k < nc; ++k) qrow[k] = (double)round_f(row[k] * ri);
      } else {
        const float* rr = r.data();
        for (i64 k = 0; k < nc; ++k) qrow[k] = (double)round_f(row[k] * rr[k]);
      }
    }
  }
}

// The whole of _repops.rmm (+ bias) for small strided operands in one call: quantise the rows
// of A (nb, m, k) and the columns of B (nb, k, n) as axl_quant does, multiply the integers in
// float64 (every product and partial sum an integer below 2**53: exact in this order as in any
// other), then scale and round as axl_scale does.
void axl_rmm_small(const float* a, i64 nb, i64 m, i64 k, i64 sab, i64 sam, i64 sak,
                   const float* bm, i64 n, i64 sbb, i64 sbk, i64 sbn, int bits,
                   const float* bias, float* out) {
  const float top = std::ldexp(1.0f, bits);
  const double down = std::ldexp(1.0, -bits);
  std::vector<double> qa((size_t)(m * k)), qb((size_t)(k * n)), sa(m), sb(n), acc(n);
  std::vector<float> ra(m), rb(n);
  std::vector<uint32_t> mb(n);
  for (i64 b = 0; b < nb; ++b) {
    const float* ab = a + b * sab;
    const float* bb = bm + b * sbb;
    for (i64 i = 0; i < m; ++i) {
      uint32_t mx = 0;
      for (i64 kk = 0; kk < k; ++kk) {
        uint32_t v;
        std::memcpy(&v, ab + i * sam + kk * sak, sizeof v);
        v &= 0x7FFFFFFFu;
        mx = v > mx ? v : mx;
      }
      quant_scale(mx, top, down, &ra[i], &sa[i]);
      for (i64 kk = 0; kk < k; ++kk) qa[i * k + kk] = (double)round_f(ab[i * sam + kk * sak] * ra[i]);
    }
    for (i64 j = 0; j < n; ++j) mb[j] = 0;
    for (i64 kk = 0; kk < k; ++kk)
      for (i64 j = 0; j < n; ++j) {
        uint32_t v;
        std::memcpy(&v, bb + kk * sbk + j * sbn, sizeof v);
        v &= 0x7FFFFFFFu;
        mb[j] = v > mb[j] ? v : mb[j];
      }
    for (i64 j = 0; j < n; ++j) quant_scale(mb[j], top, down, &rb[j], &sb[j]);
    for (i64 kk = 0; kk < k; ++kk)
      for (i64 j = 0; j < n; ++j) qb[kk * n + j] = (double)round_f(bb[kk * sbk + j * sbn] * rb[j]);
    for (i64 i = 0; i < m; ++i) {
      for (i64 j = 0; j < n; ++j) acc[j] = 0.0;
      for (i64 kk = 0; kk < k; ++kk) {
        const double x = qa[i * k + kk];
        const double* qrow = qb.data() + kk * n;
        for (i64 j = 0; j < n; ++j) acc[j] = acc[j] + x * qrow[j];
      }
      float* o = out + (b * m + i) * n;
      for (i64 j = 0; j < n; ++j) o[j] = (float)(((acc[j] + 0.0) * sa[i]) * sb[j]);
      if (bias != nullptr)
        for (i64 j = 0; j < n; ++j) o[j] = o[j] + bias[j];
    }
  }
}

// out[b, i, j] = float32((e[b, i, j] + 0.0) * sa[b, i] * sb[b, j]) (+ bias[j] in float32).
void axl_scale(const double* e, i64 nb, i64 m, i64 n, const double* sa, const double* sb,
               const float* bias, float* out) {
  for (i64 b = 0; b < nb; ++b) {
    for (i64 i = 0; i < m; ++i) {
      const double* er = e + (b * m + i) * n;
      const double ai = sa[b * m + i];
      const double* bj = sb + b * n;
      float* o = out + (b * m + i) * n;
      for (i64 j = 0; j < n; ++j) o[j] = (float)(((er[j] + 0.0) * ai) * bj[j]);
      if (bias != nullptr)
        for (i64 j = 0; j < n; ++j) o[j] = o[j] + bias[j];
    }
  }
}

// _repops.rsum of a contiguous (outer, n, inner) tensor over the middle dim into (outer, inner).
void axl_rsum(const float* x, i64 outer, i64 n, i64 inner, float* out) {
  std::vector<float> buf((size_t)(n * inner));
  for (i64 o = 0; o < outer; ++o) {
    std::memcpy(buf.data(), x + o * n * inner, sizeof(float) * n * inner);
    tree_inplace(buf.data(), n, inner);
    std::memcpy(out + o * inner, buf.data(), sizeof(float) * inner);
  }
}

void axl_relu(const float* x, i64 n, float* out) {
  for (i64 i = 0; i < n; ++i) out[i] = x[i] <= 0.0f ? 0.0f : x[i];
}

void axl_relu_grad(const float* g, const float* x, i64 n, float* out) {
  for (i64 i = 0; i < n; ++i) {
    const float gi = g[i];  // an unconditional load: the select vectorises
    out[i] = x[i] > 0.0f ? gi : 0.0f;
  }
}

// _prims.ce_loss: -(tree sum over rows of log_softmax(logits)[i, y[i]]) / rows.
// Returns 0, or -1 (nothing written) when a class id is out of range.
int axl_ce_loss(const float* x, const int64_t* y, i64 rows, i64 c, float* out) {
  for (i64 i = 0; i < rows; ++i)
    if (y[i] < 0 || y[i] >= c) return -1;
  std::vector<float> picked(rows), scratch(c);
  for (i64 i = 0; i < rows; ++i) {
    const float* xr = x + i * c;
    float m = rmax_row(xr, c, 1);
    float* sc = scratch.data();
    for (i64 k = 0; k < c; ++k) sc[k] = xr[k] - m;
    for (i64 k = 0; k < c; ++k) sc[k] = rexp1(sc[k]);
    tree_inplace(scratch.data(), c, 1);
    picked[i] = (xr[y[i]] - m) - rlog1(scratch[0]);
  }
  tree_inplace(picked.data(), rows, 1);
  out[0] = -(picked[0] / (float)rows);
  return 0;
}

// _prims.ce_grad: (softmax(logits) - onehot(y)) / rows. Returns -1 on a bad class id.
int axl_ce_grad(const float* x, const int64_t* y, i64 rows, i64 c, float* out) {
  for (i64 i = 0; i < rows; ++i)
    if (y[i] < 0 || y[i] >= c) return -1;
  std::vector<float> scratch(c);
  const float nf = (float)rows;
  for (i64 i = 0; i < rows; ++i) {
    const float* xr = x + i * c;
    float* o = out + i * c;
    float m = rmax_row(xr, c, 1);
    for (i64 k = 0; k < c; ++k) o[k] = xr[k] - m;
    for (i64 k = 0; k < c; ++k) o[k] = rexp1(o[k]);
    float s = tree_row(o, c, scratch.data());
    // ((e / s) - onehot) / rows; the one-hot column is written separately (x - 0 == x).
    for (i64 k = 0; k < c; ++k) o[k] = o[k] / s;
    const float hot = o[y[i]] - 1.0f;
    for (i64 k = 0; k < c; ++k) o[k] = (o[k] - 0.0f) / nf;
    o[y[i]] = hot / nf;
  }
  return 0;
}

// _prims.causal_softmax over (nb, t, t).
void axl_causal_softmax(const float* x, i64 nb, i64 t, float scale, float* out) {
  std::vector<float> scratch(t);
  const float ninf = -INFINITY;
  for (i64 r = 0; r < nb * t; ++r) {
    const i64 i = r % t;
    const float* xr = x + r * t;
    float* o = out + r * t;
    for (i64 k = 0; k < t; ++k) o[k] = k > i ? ninf : xr[k] * scale;
    float m = rmax_row(o, t, 1);
    for (i64 k = 0; k < t; ++k) o[k] = o[k] - m;
    for (i64 k = 0; k < t; ++k) o[k] = rexp1(o[k]);
    for (i64 k = i + 1; k < t; ++k) o[k] = 0.0f;
    float s = tree_row(o, t, scratch.data());
    for (i64 k = 0; k < t; ++k) o[k] = o[k] / s;
  }
}

// _prims.softmax_grad: (p * (g - rsum(p * g))) * scale over rows of length n.
void axl_softmax_grad(const float* p, const float* g, i64 rows, i64 n, float scale, float* out) {
  std::vector<float> scratch(n);
  for (i64 r = 0; r < rows; ++r) {
    const float* pr = p + r * n;
    const float* gr = g + r * n;
    float* o = out + r * n;
    for (i64 k = 0; k < n; ++k) scratch[k] = pr[k] * gr[k];
    tree_inplace(scratch.data(), n, 1);
    const float s = scratch[0];
    for (i64 k = 0; k < n; ++k) o[k] = (pr[k] * (gr[k] - s)) * scale;
  }
}

void axl_layernorm(const float* x, const float* gamma, const float* beta, i64 rows, i64 d,
                   float eps, float* out) {
  std::vector<float> scratch(d);
  for (i64 r = 0; r < rows; ++r) {
    float* o = out + r * d;
    ln_hat_row(x + r * d, d, eps, o, scratch.data());
    for (i64 k = 0; k < d; ++k) o[k] = o[k] * gamma[k] + beta[k];
  }
}

void axl_layernorm_grad_x(const float* x, const float* gamma, const float* g, i64 rows, i64 d,
                          float eps, float* out) {
  std::vector<float> scratch(d), xhat(d), gh(d);
  const float df = (float)d;
  for (i64 r = 0; r < rows; ++r) {
    const float* gr = g + r * d;
    float* o = out + r * d;
    float sd = ln_hat_row(x + r * d, d, eps, xhat.data(), scratch.data());
    for (i64 k = 0; k < d; ++k) gh[k] = gr[k] * gamma[k];
    float mean_gh = tree_row(gh.data(), d, scratch.data()) / df;
    for (i64 k = 0; k < d; ++k) scratch[k] = gh[k] * xhat[k];
    tree_inplace(scratch.data(), d, 1);
    float mean_ghx = scratch[0] / df;
    for (i64 k = 0; k < d; ++k) o[k] = ((gh[k] - mean_gh) - xhat[k] * mean_ghx) / sd;
  }
}

void axl_layernorm_grad_gamma(const float* x, const float* g, i64 rows, i64 d, float eps,
                              float* out) {
  std::vector<float> scratch(d), prod((size_t)(rows * d));
  for (i64 r = 0; r < rows; ++r) {
    float* pr = prod.data() + r * d;
    ln_hat_row(x + r * d, d, eps, pr, scratch.data());
    for (i64 k = 0; k < d; ++k) pr[k] = g[r * d + k] * pr[k];
  }
  tree_inplace(prod.data(), rows, d);
  std::memcpy(out, prod.data(), sizeof(float) * d);
}

void axl_adam_m(const float* m, const float* g, i64 n, float beta, float omb, float* out) {
  for (i64 i = 0; i < n; ++i) out[i] = m[i] * beta + g[i] * omb;
}

void axl_adam_v(const float* v, const float* g, i64 n, float beta, float omb, float* out) {
  for (i64 i = 0; i < n; ++i) out[i] = v[i] * beta + (g[i] * g[i]) * omb;
}

void axl_adam_param(const float* p, const float* m, const float* v, const float* b1p,
                    const float* b2p, i64 n, float lr, float eps, float* out) {
  const float c1 = 1.0f - b1p[0];
  const float c2 = 1.0f - b2p[0];
  for (i64 i = 0; i < n; ++i) {
    float step = (m[i] / c1) * lr;
    float denom = std::sqrt(v[i] / c2) + eps;
    out[i] = p[i] - step / denom;
  }
}

// _prims.random_bits: the counter-based hash of (index * 0x9E3779B9 + base) mod 2**32, as
// 32-bit unsigned arithmetic (the int64 torch form keeps exactly these low 32 bits).
void axl_random_bits(int64_t base, i64 count, int64_t* out) {
  const uint32_t b = (uint32_t)base;
  for (i64 i = 0; i < count; ++i) {
    uint32_t x = (uint32_t)i * 0x9E3779B9u + b;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    out[i] = (int64_t)x;
  }
}

// _prims.im2col: 3x3 patches (padding 1, zeros +0) of (B, C, H, W) as rows (B*H*W, C*9).
void axl_im2col(const float* x, i64 nb, i64 nc, i64 h, i64 w, float* out) {
  for (i64 b = 0; b < nb; ++b)
    for (i64 y = 0; y < h; ++y)
      for (i64 xx = 0; xx < w; ++xx) {
        float* row = out + ((b * h + y) * w + xx) * nc * 9;
        for (i64 c = 0; c < nc; ++c) {
          const float* img = x + (b * nc + c) * h * w;
          for (i64 i = 0; i < 3; ++i)
            for (i64 j = 0; j < 3; ++j) {
              i64 sy = y + i - 1, sx = xx + j - 1;
              bool in = sy >= 0 && sy < h && sx >= 0 && sx < w;
              row[c * 9 + i * 3 + j] = in ? img[sy * w + sx] : 0.0f;
            }
        }
      }
}

// _prims.col2im: each pixel of (B, C, H, W) is +0 plus its taps in (ky, kx) order.
void axl_col2im(const float* cols, i64 nb, i64 nc, i64 h, i64 w, float* out) {
  for (i64 b = 0; b < nb; ++b)
    for (i64 c = 0; c < nc; ++c)
      for (i64 y = 0; y < h; ++y)
        for (i64 xx = 0; xx < w; ++xx) {
          float acc = 0.0f;
          for (i64 i = 0; i < 3; ++i)
            for (i64 j = 0; j < 3; ++j) {
              i64 sy = y + 1 - i, sx = xx + 1 - j;
              if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
              acc = acc + cols[((b * h + sy) * w + sx) * nc * 9 + c * 9 + i * 3 + j];
            }
          out[((b * nc + c) * h + y) * w + xx] = acc;
        }
}


// Balanced base-128 limbs of integers q (float64, |q| < 2**26) for the exact int8 GEMM of
// compute/_native.py: q = sum_l d_l * 128**l with every d_l in [-64, 63] (7-bit limbs, so no
// int8 GEMM kernel can saturate an int16 pair sum, even AVX2's vpmaddubsw on x + 128). q is
// (rows, cols), row stride sr, read in memory order. Limb l of every element goes to block
// b = rev ? nl - 1 - l : l of out, stacked along the reduction dimension: kdim == 1 (columns):
// out is (rows, nl * cols), element (r, c) at out[r, b * cols + c]; kdim == 0 (rows): out is
// (nl * rows, cols), element (r, c) at out[b * rows + r, c].
void axl_limbs(const double* q, i64 rows, i64 cols, i64 sr, int nl, int kdim, int rev,
               int8_t* out) {
  std::vector<int64_t> v((size_t)cols);
  for (i64 r = 0; r < rows; ++r) {
    const double* qr = q + r * sr;
    for (i64 c = 0; c < cols; ++c) {
      // A non-finite q (from a NaN or inf input) makes its row's or column's scale NaN, so
      // every output it reaches is NaN whatever its limbs: 0 avoids an undefined conversion.
      const double x = qr[c];
      v[c] = std::fabs(x) <= 0x1p62 ? (int64_t)x : 0;
    }
    for (int l = 0; l < nl; ++l) {
      const i64 blk = rev ? nl - 1 - l : l;
      int8_t* o = kdim == 1 ? out + r * nl * cols + blk * cols : out + (blk * rows + r) * cols;
      for (i64 c = 0; c < cols; ++c) {
        const int64_t d = ((v[c] + 64) & 127) - 64;  // two's complement: v + 64 mod 128, - 64
        o[c] = (int8_t)d;
        v[c] = (v[c] - d) >> 7;  // exact: v - d is a multiple of 128
      }
    }
  }
}

// The exact sums of the limb products: p holds ns (m*n) int32 partial sums, p[s] the sum of
// every limb pair (i, j) with i + j == s; out = sum_s p[s] * 128**s as float64 (an integer
// below 2**53, so exact). Horner in unsigned 64-bit arithmetic: exact modulo 2**64 whatever
// the intermediate values, hence exact since the result is below 2**53 in magnitude.
void axl_limb_sum(const int32_t* p, i64 ns, i64 mn, double* out) {
  constexpr i64 kChunk = 1024;
  uint64_t acc[kChunk];
  for (i64 i0 = 0; i0 < mn; i0 += kChunk) {
    const i64 len = mn - i0 < kChunk ? mn - i0 : kChunk;
    for (i64 i = 0; i < len; ++i) acc[i] = 0;
    for (i64 s = ns - 1; s >= 0; --s) {
      const int32_t* ps = p + s * mn + i0;
      for (i64 i = 0; i < len; ++i) acc[i] = acc[i] * 128u + (uint64_t)(int64_t)ps[i];
    }
    for (i64 i = 0; i < len; ++i) out[i0 + i] = (double)(int64_t)acc[i];
  }
}

}  // extern "C"
