// The class-maximum image order (class_max.py) in two loops, for the CPU: the undecided pixels, and a band of
// rows of the winners' maps.
//
// Per undecided block (the 2x2 network cells that an output pixel with lower neighbour (i, j) reads), the
// classes that can win anywhere in it are chosen as class_max._can_win chooses them, and at each of the
// block's output pixels those candidates are interpolated, in class order, with the products and sums of
// scores/interpolation.py (columns first: v0 * w0 + v1 * w1, then rows the same way; each product and
// sum rounded to float, no contraction: built with -ffp-contract=off), keeping the first maximum of the
// logits and the maximum of the class scores f = l - b. The result is bit for bit what the PyTorch path
// gives. Blocks with a value that is not finite are left to the PyTorch path (torch.max's NaN rules).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

extern "C" {

// Returns the number of pixels written to the out_* arrays (sized for every pixel of every block);
// handled[n] is set to 1 for the blocks done here, 0 for those with a value that is not finite.
int64_t hypood_class_max_undecided(
    const float* logits, int64_t B, int64_t K, int64_t h, int64_t w, const float* bias,
    int64_t H, int64_t W,
    const int64_t* row_first, const int64_t* row_count, const float* row_w0, const float* row_w1,
    int32_t rows_interpolated,
    const int64_t* col_first, const int64_t* col_count, const float* col_w0, const float* col_w1,
    int32_t cols_interpolated,
    const int64_t* block_b, const int64_t* block_i, const int64_t* block_j, int64_t n,
    int32_t class_scores, float margin, float tiny,
    uint8_t* handled, int64_t* out_batch, int64_t* out_at, float* out_value, int64_t* out_class,
    float* out_class_score) {
  (void)B;
  const int64_t plane = h * w;
  float max_abs_bias = 0.0f;
  for (int64_t k = 0; k < K; ++k) max_abs_bias = std::fmax(max_abs_bias, std::fabs(bias[k]));
  std::vector<float> v(4 * K);   // corner values, [corner][class]
  std::vector<int64_t> cand(K);
  std::vector<float> top(K), bottom(K);
  int64_t written = 0;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t b = block_b[t], i = block_i[t], j = block_j[t];
    const int64_t ni = rows_interpolated ? std::min(i + 1, h - 1) : i;
    const int64_t nj = cols_interpolated ? std::min(j + 1, w - 1) : j;
    const int64_t cells[4] = {i * w + j, i * w + nj, ni * w + j, ni * w + nj};
    const float* base = logits + b * K * plane;
    bool finite = true;
    float scale = 0.0f;  // the largest, over the 4 cells, of max_k |l_k| + max_k |b_k|
    for (int c = 0; c < 4; ++c) {
      float cell_abs = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const float x = base[k * plane + cells[c]];
        v[c * K + k] = x;
        finite = finite && std::isfinite(x);
        cell_abs = std::fmax(cell_abs, std::fabs(x));
      }
      scale = std::fmax(scale, cell_abs + max_abs_bias);
    }
    handled[t] = finite ? 1 : 0;
    if (!finite) continue;
    const float slack = margin * scale + tiny;
    // _can_win for the logits and, with class scores, for l - b: one candidate set for both maxima.
    float best_lower = -INFINITY, best_lower_f = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      float lo = std::fmin(std::fmin(v[k], v[K + k]), std::fmin(v[2 * K + k], v[3 * K + k]));
      best_lower = std::fmax(best_lower, lo);
      if (class_scores) {
        const float bk = bias[k];
        lo = std::fmin(std::fmin(v[k] - bk, v[K + k] - bk), std::fmin(v[2 * K + k] - bk, v[3 * K + k] - bk));
        best_lower_f = std::fmax(best_lower_f, lo);
      }
    }
    const float bar = best_lower - slack, bar_f = best_lower_f - slack;
    int64_t m = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float up = std::fmax(std::fmax(v[k], v[K + k]), std::fmax(v[2 * K + k], v[3 * K + k]));
      bool can = up >= bar;
      if (class_scores && !can) {
        const float bk = bias[k];
        const float up_f = std::fmax(std::fmax(v[k] - bk, v[K + k] - bk), std::fmax(v[2 * K + k] - bk, v[3 * K + k] - bk));
        can = up_f >= bar_f;
      }
      if (can) cand[m++] = k;
    }
    const int64_t y0 = row_first[i], ny = row_count[i], x0 = col_first[j], nx = col_count[j];
    for (int64_t x = x0; x < x0 + nx; ++x) {
      for (int64_t q = 0; q < m; ++q) {  // the columns blended on the block's two network rows
        const int64_t k = cand[q];
        if (cols_interpolated) {
          top[q] = v[k] * col_w0[x] + v[K + k] * col_w1[x];
          bottom[q] = v[2 * K + k] * col_w0[x] + v[3 * K + k] * col_w1[x];
        } else {
          top[q] = v[k];
          bottom[q] = v[2 * K + k];
        }
      }
      for (int64_t y = y0; y < y0 + ny; ++y) {
        float best = 0.0f, best_f = 0.0f;
        int64_t best_k = 0;
        for (int64_t q = 0; q < m; ++q) {
          const float value = rows_interpolated ? top[q] * row_w0[y] + bottom[q] * row_w1[y] : top[q];
          if (q == 0 || value > best) {
            best = value;
            best_k = cand[q];
          }
          if (class_scores) {
            const float f = value - bias[cand[q]];
            if (q == 0 || f > best_f) best_f = f;
          }
        }
        out_batch[written] = b;
        out_at[written] = (b * H + y) * W + x;
        out_value[written] = best;
        out_class[written] = best_k;
        if (class_scores) out_class_score[written] = best_f;
        ++written;
      }
    }
  }
  return written;
}

// A band of output rows [r0, r1) of the winners' maps: each of the C channels of `winners` [B,C,h,w]
// interpolated as scores/interpolation.py does (columns first on the two source rows, then rows; an axis
// that keeps its size is not blended), into values [B,C,r1-r0,W]; the class of each pixel's lower cell from
// class_rows [h,B,W] (uint8 or int64, network rows at the output's columns) into classes [B,r1-r0,W]; and,
// with class_channel >= 0, values[class_channel] less bias_rows [h,B,W] into class_score [B,r1-r0,W].
// The undecided pixels' values are written afterwards by the caller.
void hypood_class_max_band(
    const float* winners, int64_t B, int64_t C, int64_t h, int64_t w, int64_t W, int64_t r0, int64_t r1,
    const int64_t* row_i0, const int64_t* row_i1, const float* row_w0, const float* row_w1, int32_t rows_interpolated,
    const int64_t* col_i0, const int64_t* col_i1, const float* col_w0, const float* col_w1,
    int32_t cols_interpolated,
    const void* class_rows, int32_t class_bytes, const float* bias_rows, int32_t class_channel,
    float* values, void* classes, float* class_score) {
  const int64_t n = r1 - r0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t r = 0; r < n; ++r) {
      const int64_t y = r0 + r;
      const int64_t i0 = rows_interpolated ? row_i0[y] : y, i1 = rows_interpolated ? row_i1[y] : y;
      const float wy0 = rows_interpolated ? row_w0[y] : 1.0f, wy1 = rows_interpolated ? row_w1[y] : 0.0f;
      for (int64_t c = 0; c < C; ++c) {
        const float* top_row = winners + ((b * C + c) * h + i0) * w;
        const float* bottom_row = winners + ((b * C + c) * h + i1) * w;
        float* out = values + ((b * C + c) * n + r) * W;
        for (int64_t x = 0; x < W; ++x) {
          float top, bottom;
          if (cols_interpolated) {
            const int64_t j0 = col_i0[x], j1 = col_i1[x];
            top = top_row[j0] * col_w0[x] + top_row[j1] * col_w1[x];
            bottom = bottom_row[j0] * col_w0[x] + bottom_row[j1] * col_w1[x];
          } else {
            top = top_row[x];
            bottom = bottom_row[x];
          }
          out[x] = rows_interpolated ? top * wy0 + bottom * wy1 : top;
        }
      }
      const int64_t src = (i0 * B + b) * W, dst = (b * n + r) * W;
      if (class_bytes == 1) {
        const uint8_t* from = static_cast<const uint8_t*>(class_rows) + src;
        uint8_t* to = static_cast<uint8_t*>(classes) + dst;
        for (int64_t x = 0; x < W; ++x) to[x] = from[x];
      } else {
        const int64_t* from = static_cast<const int64_t*>(class_rows) + src;
        int64_t* to = static_cast<int64_t*>(classes) + dst;
        for (int64_t x = 0; x < W; ++x) to[x] = from[x];
      }
      if (class_channel >= 0) {
        const float* value = values + ((b * C + class_channel) * n + r) * W;
        const float* bias = bias_rows + src;
        float* to = class_score + dst;
        for (int64_t x = 0; x < W; ++x) to[x] = value[x] - bias[x];
      }
    }
  }
}

}  // extern "C"
