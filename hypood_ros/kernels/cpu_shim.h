// What the host C++ compiler needs to build fused_scores.cu unchanged (verification only, not a backend).
//
// CUDA's execution-space keywords become plain C++, the thread/block coordinates become thread-local
// variables that cpu_launch.cpp sets before each call of a kernel body, and the intrinsics the kernel
// uses map to <math.h> or to portable bit manipulation. __CUDACC__ stays undefined, so CUDA-only
// lines (the PTX half conversion) are replaced by hypood_half_to_float.
#pragma once

#include <math.h>
#include <string.h>

#ifdef __CUDACC__
#error "cpu_shim.h is for the host compiler only"
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// g++ and clang++ accept __restrict__ as a keyword; nothing to define.

struct hypood_uint3 {
    unsigned int x, y, z;
};

static thread_local hypood_uint3 threadIdx, blockIdx, blockDim, gridDim;

static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

// CUDA's fast intrinsics, should the kernel use them (glibc declares functions of the same names, so
// these are macros, defined after <math.h>).
#define __expf(x) expf(x)
#define __logf(x) logf(x)

// IEEE 754 binary16 bits -> float, exact for every value (normals, subnormals, zeros, inf, NaN),
// as PTX cvt.f32.f16.
static inline float hypood_half_to_float(unsigned short h) {
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
    unsigned int exponent = (h >> 10) & 0x1fu;
    unsigned int mantissa = h & 0x3ffu;
    unsigned int bits;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {  // subnormal: shift the leading one into the implicit bit
        unsigned int shift = 0;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            ++shift;
        }
        bits = sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
