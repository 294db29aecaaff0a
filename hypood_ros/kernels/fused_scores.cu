// Fused per-pixel OOD scores for hypood_ros (compiled at run time with NVRTC; no headers needed).
//
// One thread per pixel of NCHW tensors; adjacent threads read adjacent pixels of every channel, so
// each channel read is coalesced. Per pixel, in one pass over the inputs:
//   ||z||          over the D embedding channels (fp32 accumulation, clamped to NORM_EPS)
//   class id       argmax_k of the logits (f + b), first maximum wins, as torch.argmax
//   energy         -logsumexp_k( wfac_k * (logit_k - b_k) / ||z|| ), online (single-pass, stable)
//   llr            (u_1 - u_0)(bilinear, align_corners=False) - lam * logsumexp(...)   [if uem != 0]
//   mask           255 where the thresholded score (llr if uem given, else energy) > threshold
// wfac_k = ||M_k||^(eta-1) and b_k are computed once on the host and passed as small fp32 arrays.

#define NORM_EPS 1e-6f
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float load_value(const float* p, long long i) { return p[i]; }

__device__ __forceinline__ float load_value(const unsigned short* p, long long i) {
    unsigned short h = p[i];
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

template <typename T>
__device__ __forceinline__ float bilinear_diff(const T* uem, int b, int y, int x, int H, int W, int Hu, int Wu) {
    // Matches torch.nn.functional.interpolate(mode="bilinear", align_corners=False).
    float sy = ((float)y + 0.5f) * ((float)Hu / (float)H) - 0.5f;
    float sx = ((float)x + 0.5f) * ((float)Wu / (float)W) - 0.5f;
    sy = sy < 0.f ? 0.f : sy;
    sx = sx < 0.f ? 0.f : sx;
    int y0 = (int)sy, x0 = (int)sx;
    int y1 = y0 + (y0 < Hu - 1 ? 1 : 0);
    int x1 = x0 + (x0 < Wu - 1 ? 1 : 0);
    float ly = sy - (float)y0, lx = sx - (float)x0;
    float hy = 1.f - ly, hx = 1.f - lx;
    long long plane = (long long)Hu * Wu;
    long long base0 = (long long)b * 2 * plane;  // channel 0: inlier
    long long base1 = base0 + plane;             // channel 1: outlier
    float u0 = hy * (hx * load_value(uem, base0 + (long long)y0 * Wu + x0) + lx * load_value(uem, base0 + (long long)y0 * Wu + x1))
             + ly * (hx * load_value(uem, base0 + (long long)y1 * Wu + x0) + lx * load_value(uem, base0 + (long long)y1 * Wu + x1));
    float u1 = hy * (hx * load_value(uem, base1 + (long long)y0 * Wu + x0) + lx * load_value(uem, base1 + (long long)y0 * Wu + x1))
             + ly * (hx * load_value(uem, base1 + (long long)y1 * Wu + x0) + lx * load_value(uem, base1 + (long long)y1 * Wu + x1));
    return u1 - u0;
}

template <typename T>
__device__ __forceinline__ void fused_pixel(
    const T* __restrict__ emb, const T* __restrict__ logits, const float* __restrict__ wfac,
    const float* __restrict__ bias, const T* __restrict__ uem,
    int B, int D, int K, int H, int W, int Hu, int Wu, float lam, float threshold, int use_threshold,
    unsigned char* __restrict__ class_ids, float* __restrict__ energy, float* __restrict__ llr,
    unsigned char* __restrict__ mask) {
    long long hw = (long long)H * W;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * hw) return;
    int b = (int)(idx / hw);
    long long p = idx - (long long)b * hw;

    const T* z = emb + (long long)b * D * hw + p;
    float sumsq = 0.f;
    for (int d = 0; d < D; ++d) {
        float v = load_value(z, (long long)d * hw);
        sumsq = fmaf(v, v, sumsq);
    }
    float inv_norm = 1.f / fmaxf(sqrtf(sumsq), NORM_EPS);

    const T* l = logits + (long long)b * K * hw + p;
    float best = NEG_INF;
    int best_k = 0;
    float m = NEG_INF, s = 0.f;  // online logsumexp state
    for (int k = 0; k < K; ++k) {
        float logit = load_value(l, (long long)k * hw);
        if (logit > best) { best = logit; best_k = k; }
        float v = wfac[k] * (logit - bias[k]) * inv_norm;
        if (v > m) { s = s * expf(m - v) + 1.f; m = v; }
        else { s += expf(v - m); }
    }
    float lse = m + logf(s);
    float e = -lse;
    class_ids[idx] = (unsigned char)best_k;
    energy[idx] = e;
    float score = e;
    if (uem != 0) {
        int y = (int)(p / W), x = (int)(p - (long long)y * W);
        float l_r = bilinear_diff(uem, b, y, x, H, W, Hu, Wu) - lam * lse;
        llr[idx] = l_r;
        score = l_r;
    }
    if (use_threshold) mask[idx] = score > threshold ? 255 : 0;
}

extern "C" __global__ void fused_scores_f32(
    const float* emb, const float* logits, const float* wfac, const float* bias, const float* uem,
    int B, int D, int K, int H, int W, int Hu, int Wu, float lam, float threshold, int use_threshold,
    unsigned char* class_ids, float* energy, float* llr, unsigned char* mask) {
    fused_pixel<float>(emb, logits, wfac, bias, uem, B, D, K, H, W, Hu, Wu, lam, threshold, use_threshold,
                       class_ids, energy, llr, mask);
}

extern "C" __global__ void fused_scores_f16(
    const unsigned short* emb, const unsigned short* logits, const float* wfac, const float* bias,
    const unsigned short* uem, int B, int D, int K, int H, int W, int Hu, int Wu, float lam, float threshold,
    int use_threshold, unsigned char* class_ids, float* energy, float* llr, unsigned char* mask) {
    fused_pixel<unsigned short>(emb, logits, wfac, bias, uem, B, D, K, H, W, Hu, Wu, lam, threshold,
                                use_threshold, class_ids, energy, llr, mask);
}
