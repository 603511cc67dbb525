// onehot.cu — one-hot encoding of base codes on the device, with scBasset's augmentation
// (reverse complement, then shift). CPU twin: src/backend/cpu/onehot.rs (one_hot_shifted).
//
// codes (B, L) u8 (A C G T N = 0..4), reverse (B) u8 flags, shift (B) int with |shift| < L,
// out (B, 4, L) f32. r[b, t] = codes[b, t], or for a reversed sequence the complement (3 - c)
// of codes[b, L - 1 - t]; then out[b, ch, t] = (r[b, t - shift[b]] == ch) where
// 0 <= t - shift[b] < L, else 0.25 in all four channels; N gives all zeros.
// Launch: 1-D grid-stride over B * L, each position writing its 4 channels.

extern "C" __global__ void one_hot_f32(const unsigned char* __restrict__ codes, const unsigned char* __restrict__ reverse,
                                       const int* __restrict__ shift, float* __restrict__ out, long long B, int L) {
    GRID_STRIDE_LOOP(k, B * L) {
        const long long b = k / L;
        const int t = (int)(k - b * L);
        float* o = out + b * 4 * L + t;
        const long long src = (long long)t - shift[b];
        if (src < 0 || src >= L) {
            for (int ch = 0; ch < 4; ++ch) o[(long long)ch * L] = 0.25f;
            continue;
        }
        unsigned char c;
        if (reverse[b]) {
            const unsigned char r = codes[b * L + (L - 1 - src)];
            c = r < 4 ? (unsigned char)(3 - r) : (unsigned char)4;
        } else {
            c = codes[b * L + src];
        }
        for (int ch = 0; ch < 4; ++ch) o[(long long)ch * L] = (c == ch) ? 1.0f : 0.0f;
    }
}
