// Fused per-pixel OOD scores for hypood_ros (compiled at run time with NVRTC; no headers needed).
//
// The same source also builds with the host C++ compiler for verification (cpu_shim.h is included
// first; cpu_launch.cpp runs every (block, thread) of the launcher's grid). Lines that only a CUDA
// compiler understands sit under __CUDACC__ (defined by NVRTC and by both of nvcc's passes; the host
// pass must still parse device code, so __CUDA_ARCH__ alone would not do).
//
// One thread per output pixel of NCHW tensors; adjacent threads read adjacent pixels of every channel,
// so each channel read is coalesced. Per pixel, in one pass over the inputs:
//   ||z||          over the D embedding channels (fp32 accumulation, clamped to NORM_EPS)
//   class id       argmax_k of the logits (f + b), first maximum wins, as torch.argmax
//   energy         -logsumexp_k( wfac_k * (logit_k - b_k) / ||z|| ), online (single-pass, stable)
//   llr            (u_1 - u_0)(bilinear, align_corners=False) - lam * logsumexp(...)   [if uem != 0]
// No mask: the node thresholds its chosen score once, on the host (pipeline.obstacle_mask).
// wfac_k = ||M_k||^(eta-1) and b_k are computed once on the host and passed as small fp32 arrays.
//
// Two resolutions (hypood_ros.scores.registry.SCORE_RESOLUTIONS):
//   network  fused_scores_*: one thread per network cell [B,h,w].
//   image    embedding_norms_* then fused_image_*: one thread per output pixel [B,H,W]; the logits, the
//            norms and the UEM logits are sampled bilinearly (align_corners=False, torch's arithmetic)
//            per output pixel, then the formula above is applied, exactly as ScoreInputs.resized.

#define NORM_EPS 1e-6f
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float load_value(const float* p, long long i) { return p[i]; }

__device__ __forceinline__ float load_value(const unsigned short* p, long long i) {
    unsigned short h = p[i];
#ifdef __CUDACC__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return hypood_half_to_float(h);  // cpu_shim.h
#endif
}

// One axis of torch's bilinear resampling (align_corners=False, no scale factor given):
// source index = max((dst + 0.5) * in/out - 0.5, 0), lower neighbour clamped to in-1, upper neighbour
// one further unless at the edge, weights (1 - l, l). Equal sizes copy exactly, as torch does.
struct Lerp {
    int i0, i1;
    float w0, w1;
};

__device__ __forceinline__ Lerp axis_lerp(int dst, int in_size, int out_size) {
    Lerp r;
    if (in_size == out_size) {
        r.i0 = dst; r.i1 = dst; r.w0 = 1.f; r.w1 = 0.f;
        return r;
    }
    float src = ((float)dst + 0.5f) * ((float)in_size / (float)out_size) - 0.5f;
    src = src < 0.f ? 0.f : src;
    int i0 = (int)src;
    i0 = i0 < in_size - 1 ? i0 : in_size - 1;
    float l = src - (float)i0;
    l = l < 0.f ? 0.f : (l > 1.f ? 1.f : l);
    r.i0 = i0;
    r.i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
    r.w1 = l;
    r.w0 = 1.f - l;
    return r;
}

// Bilinear sample of one [h,w] plane at (ly, lx), summed in torch's order: rows of columns.
template <typename T>
__device__ __forceinline__ float sample(const T* plane, int w, const Lerp& ly, const Lerp& lx) {
    long long r0 = (long long)ly.i0 * w, r1 = (long long)ly.i1 * w;
    return ly.w0 * (lx.w0 * load_value(plane, r0 + lx.i0) + lx.w1 * load_value(plane, r0 + lx.i1))
         + ly.w1 * (lx.w0 * load_value(plane, r1 + lx.i0) + lx.w1 * load_value(plane, r1 + lx.i1));
}

// u_1 - u_0 of UEM logits [B,2,Hu,Wu] sampled bilinearly at output pixel (y, x) of an [H,W] grid.
template <typename T>
__device__ __forceinline__ float uem_difference(const T* uem, int b, int y, int x, int H, int W, int Hu, int Wu) {
    Lerp ly = axis_lerp(y, Hu, H), lx = axis_lerp(x, Wu, W);
    long long plane = (long long)Hu * Wu;
    const T* u0 = uem + (long long)b * 2 * plane;  // channel 0: inlier
    const T* u1 = u0 + plane;                       // channel 1: outlier
    return sample(u1, Wu, ly, lx) - sample(u0, Wu, ly, lx);
}

// Online argmax and logsumexp over the classes, one logit at a time.
struct ClassScan {
    float best, m, s;
    int best_k;
};

__device__ __forceinline__ void scan_start(ClassScan& c) {
    c.best = NEG_INF; c.best_k = 0; c.m = NEG_INF; c.s = 0.f;
}

__device__ __forceinline__ void scan_class(ClassScan& c, int k, float logit, float wfac, float bias, float inv_norm) {
    if (logit > c.best) { c.best = logit; c.best_k = k; }
    float v = wfac * (logit - bias) * inv_norm;
    if (v > c.m) { c.s = c.s * expf(c.m - v) + 1.f; c.m = v; }
    else { c.s += expf(v - c.m); }
}

// Writes class id, energy and llr of output index idx (shared by both resolutions).
template <typename T>
__device__ __forceinline__ void finish_pixel(
    const ClassScan& c, long long idx, const T* __restrict__ uem, int b, int y, int x, int H, int W, int Hu,
    int Wu, float lam, unsigned char* __restrict__ class_ids, float* __restrict__ energy,
    float* __restrict__ llr) {
    float lse = c.m + logf(c.s);
    class_ids[idx] = (unsigned char)c.best_k;
    energy[idx] = -lse;
    if (uem != 0) llr[idx] = uem_difference(uem, b, y, x, H, W, Hu, Wu) - lam * lse;
}

template <typename T>
__device__ __forceinline__ float sum_of_squares(const T* z, int D, long long stride) {
    float sumsq = 0.f;
    for (int d = 0; d < D; ++d) {
        float v = load_value(z, (long long)d * stride);
        sumsq = fmaf(v, v, sumsq);
    }
    return sumsq;
}

// ---- network resolution: one thread per network cell ------------------------------------------------

template <typename T>
__device__ __forceinline__ void fused_pixel(
    const T* __restrict__ emb, const T* __restrict__ logits, const float* __restrict__ wfac,
    const float* __restrict__ bias, const T* __restrict__ uem,
    int B, int D, int K, int H, int W, int Hu, int Wu, float lam, unsigned char* __restrict__ class_ids,
    float* __restrict__ energy, float* __restrict__ llr) {
    long long hw = (long long)H * W;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * hw) return;
    int b = (int)(idx / hw);
    long long p = idx - (long long)b * hw;

    float inv_norm = 1.f / fmaxf(sqrtf(sum_of_squares(emb + (long long)b * D * hw + p, D, hw)), NORM_EPS);

    const T* l = logits + (long long)b * K * hw + p;
    ClassScan c;
    scan_start(c);
    for (int k = 0; k < K; ++k) scan_class(c, k, load_value(l, (long long)k * hw), wfac[k], bias[k], inv_norm);
    int y = (int)(p / W), x = (int)(p - (long long)y * W);
    finish_pixel(c, idx, uem, b, y, x, H, W, Hu, Wu, lam, class_ids, energy, llr);
}

extern "C" __global__ void fused_scores_f32(
    const float* emb, const float* logits, const float* wfac, const float* bias, const float* uem,
    int B, int D, int K, int H, int W, int Hu, int Wu, float lam, unsigned char* class_ids, float* energy,
    float* llr) {
    fused_pixel<float>(emb, logits, wfac, bias, uem, B, D, K, H, W, Hu, Wu, lam, class_ids, energy, llr);
}

extern "C" __global__ void fused_scores_f16(
    const unsigned short* emb, const unsigned short* logits, const float* wfac, const float* bias,
    const unsigned short* uem, int B, int D, int K, int H, int W, int Hu, int Wu, float lam,
    unsigned char* class_ids, float* energy, float* llr) {
    fused_pixel<unsigned short>(emb, logits, wfac, bias, uem, B, D, K, H, W, Hu, Wu, lam, class_ids, energy, llr);
}

// ---- image resolution: ||z|| per network cell, then one thread per output pixel -----------------------
//
// The norm is defined per network cell and then interpolated (interp(||z||), ScoreInputs.resized). It is
// computed once per cell in a first pass into a small fp32 [B,h,w] map: each embedding value is read
// once. Computing the 4 neighbours' norms inside the per-pixel kernel instead would read 4*D values per
// output pixel, i.e. the whole embedding again for every output pixel that shares a cell (dozens of
// times when a 1080p image is sampled from a network grid a few times smaller), which is the traffic
// this kernel exists to avoid. With the map, each output pixel reads 4 neighbours of each of the K
// logits, 4 norms and 4 of each of the 2 UEM logits, and no K-channel tensor exists at image size.

template <typename T>
__device__ __forceinline__ void norm_cell(const T* __restrict__ emb, int B, int D, int h, int w,
                                          float* __restrict__ norms) {
    long long hw = (long long)h * w;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * hw) return;
    int b = (int)(idx / hw);
    long long p = idx - (long long)b * hw;
    norms[idx] = sqrtf(sum_of_squares(emb + (long long)b * D * hw + p, D, hw));  // clamped after sampling
}

extern "C" __global__ void embedding_norms_f32(const float* emb, int B, int D, int h, int w, float* norms) {
    norm_cell<float>(emb, B, D, h, w, norms);
}

extern "C" __global__ void embedding_norms_f16(const unsigned short* emb, int B, int D, int h, int w, float* norms) {
    norm_cell<unsigned short>(emb, B, D, h, w, norms);
}

template <typename T>
__device__ __forceinline__ void image_pixel(
    const float* __restrict__ norms, const T* __restrict__ logits, const float* __restrict__ wfac,
    const float* __restrict__ bias, const T* __restrict__ uem, int B, int K, int h, int w, int H, int W,
    int Hu, int Wu, float lam, unsigned char* __restrict__ class_ids, float* __restrict__ energy,
    float* __restrict__ llr) {
    long long HW = (long long)H * W;
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * HW) return;
    int b = (int)(idx / HW);
    long long p = idx - (long long)b * HW;
    int y = (int)(p / W), x = (int)(p - (long long)y * W);

    Lerp ly = axis_lerp(y, h, H), lx = axis_lerp(x, w, W);
    long long hw = (long long)h * w;
    float norm = sample(norms + (long long)b * hw, w, ly, lx);
    float inv_norm = 1.f / fmaxf(norm, NORM_EPS);

    const T* l = logits + (long long)b * K * hw;
    ClassScan c;
    scan_start(c);
    for (int k = 0; k < K; ++k) scan_class(c, k, sample(l + (long long)k * hw, w, ly, lx), wfac[k], bias[k], inv_norm);
    finish_pixel(c, idx, uem, b, y, x, H, W, Hu, Wu, lam, class_ids, energy, llr);
}

extern "C" __global__ void fused_image_f32(
    const float* norms, const float* logits, const float* wfac, const float* bias, const float* uem,
    int B, int K, int h, int w, int H, int W, int Hu, int Wu, float lam, unsigned char* class_ids,
    float* energy, float* llr) {
    image_pixel<float>(norms, logits, wfac, bias, uem, B, K, h, w, H, W, Hu, Wu, lam, class_ids, energy, llr);
}

extern "C" __global__ void fused_image_f16(
    const float* norms, const unsigned short* logits, const float* wfac, const float* bias,
    const unsigned short* uem, int B, int K, int h, int w, int H, int W, int Hu, int Wu, float lam,
    unsigned char* class_ids, float* energy, float* llr) {
    image_pixel<unsigned short>(norms, logits, wfac, bias, uem, B, K, h, w, H, W, Hu, Wu, lam, class_ids, energy,
                                llr);
}
