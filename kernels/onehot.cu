// onehot.cu — one-hot encoding of base codes on the device, with reverse complement.
// CPU twin: src/backend/cpu/onehot.rs.
//
// codes (B, L) u8 (A C G T N = 0..4), reverse (B) u8 flags, out (B, 4, L) f32:
// out[b, ch, l] = 1 if the base at l is ch, where a reversed sequence reads the complement
// (3 - c) of codes[b, L - 1 - l]; N gives all zeros. Launch: 1-D grid-stride over B * L.

extern "C" __global__ void one_hot_f32(const unsigned char* __restrict__ codes, const unsigned char* __restrict__ reverse,
                                       float* __restrict__ out, long long B, int L) {
    GRID_STRIDE_LOOP(k, B * L) {
        const long long b = k / L;
        const int l = (int)(k - b * L);
        unsigned char c;
        if (reverse[b]) {
            const unsigned char r = codes[b * L + (L - 1 - l)];
            c = r < 4 ? (unsigned char)(3 - r) : (unsigned char)4;
        } else {
            c = codes[k];
        }
        float* o = out + b * 4 * L + l;
        for (int ch = 0; ch < 4; ++ch) o[(long long)ch * L] = (c == ch) ? 1.0f : 0.0f;
    }
}
