// Host build of fused_scores.cu for verification (cpu_build.py compiles and loads it; not a backend).
//
// hypood_cpu_launch takes what cuLaunchKernel takes: a kernel, a grid, a block and an array of pointers
// to the argument values. Each value is read as the type the kernel declares for that parameter (the
// types come from the kernel's own signature, through templates), so arguments packed in the wrong
// order or with the wrong type are misread here as they would be on a GPU. The body runs for every
// (block, thread) of the grid, one after the other; the kernel's threads are independent (no shared
// memory, no barriers), so the order does not matter.
#include "cpu_shim.h"
#include "fused_scores.cu"

#include <string>
#include <utility>

namespace {

template <typename T> struct CType;
template <> struct CType<int> { static constexpr const char* name = "int"; };
template <> struct CType<float> { static constexpr const char* name = "float"; };
template <> struct CType<const float*> { static constexpr const char* name = "const float*"; };
template <> struct CType<float*> { static constexpr const char* name = "float*"; };
template <> struct CType<const unsigned short*> { static constexpr const char* name = "const unsigned short*"; };
template <> struct CType<unsigned char*> { static constexpr const char* name = "unsigned char*"; };

template <typename... A>
std::string signature(void (*)(A...)) {
    std::string s;
    ((s += std::string(s.empty() ? "" : ",") + CType<A>::name), ...);
    return s;
}

template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<A*>(params[I])...);
}

template <typename... A>
void run_grid(void (*kernel)(A...), hypood_uint3 grid, hypood_uint3 block, void** params) {
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = {bx, by, bz};
                for (unsigned tz = 0; tz < block.z; ++tz)
                    for (unsigned ty = 0; ty < block.y; ++ty)
                        for (unsigned tx = 0; tx < block.x; ++tx) {
                            threadIdx = {tx, ty, tz};
                            call(kernel, params, std::index_sequence_for<A...>{});
                        }
            }
}

#define HYPOOD_KERNELS(X) \
    X(fused_scores_f32) X(fused_scores_f16) X(embedding_norms_f32) X(embedding_norms_f16) \
    X(fused_image_f32) X(fused_image_f16)

}  // namespace

extern "C" {

// Comma-separated kernel names of this build.
const char* hypood_cpu_kernels() {
#define HYPOOD_NAME(k) #k ","
    static const std::string names = [] { std::string s = HYPOOD_KERNELS(HYPOOD_NAME); s.pop_back(); return s; }();
#undef HYPOOD_NAME
    return names.c_str();
}

// The C parameter types of a kernel, comma-separated; null for an unknown kernel.
const char* hypood_cpu_signature(const char* name) {
#define HYPOOD_SIGNATURE(k) \
    if (std::string(name) == #k) { static const std::string s = signature(&k); return s.c_str(); }
    HYPOOD_KERNELS(HYPOOD_SIGNATURE)
#undef HYPOOD_SIGNATURE
    return nullptr;
}

// 0 on success, -1 for an unknown kernel.
int hypood_cpu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                      unsigned bz, void** params) {
#define HYPOOD_LAUNCH(k) \
    if (std::string(name) == #k) { run_grid(&k, {gx, gy, gz}, {bx, by, bz}, params); return 0; }
    HYPOOD_KERNELS(HYPOOD_LAUNCH)
#undef HYPOOD_LAUNCH
    return -1;
}

// The shim's half -> float conversion, for an exhaustive check against torch.
void hypood_cpu_half_to_float(const unsigned short* in, float* out, long long n) {
    for (long long i = 0; i < n; ++i) out[i] = hypood_half_to_float(in[i]);
}

}  // extern "C"
