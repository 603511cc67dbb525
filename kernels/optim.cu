// optim.cu — Adam with bias correction (L2 weight decay, as PyTorch's Adam).
// CPU twin: src/backend/cpu/optim.rs.
//
//   g <- g + wd*theta;  m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g^2
//   theta <- theta - lr * (m / bc1) / (sqrt(v / bc2) + eps),  bc1 = 1 - b1^t, bc2 = 1 - b2^t
//
// theta, grad, m, v: flat f32 arrays of n elements. Launch: 1-D grid-stride.

extern "C" __global__ void adam_step_f32(float* __restrict__ theta, const float* __restrict__ grad,
                                         float* __restrict__ m, float* __restrict__ v, long long n,
                                         float lr, float b1, float b2, float eps, float wd,
                                         float bc1, float bc2) {
    GRID_STRIDE_LOOP(i, n) {
        const float g = grad[i] + wd * theta[i];
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        theta[i] = theta[i] - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    }
}
