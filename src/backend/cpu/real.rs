//! The scalar type of the CPU specification: f32 in production, f64 in gradient checks.

/// A real number the CPU ops are generic over (`f32` or `f64`).
pub trait Real:
    num_traits::Float + ndarray::LinalgScalar + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static
{
    /// The nearest value of this type to `v`.
    fn of(v: f64) -> Self;
    /// This value widened (or kept) to f64.
    fn as_f64(self) -> f64;
    /// The slice as f32, when this type is f32 (the fast paths are written for f32 only).
    fn f32s(s: &[Self]) -> Option<&[f32]>;
    fn f32s_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn f32s(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    fn f32s_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn f32s(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn f32s_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
