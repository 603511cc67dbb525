//! Models built from the layers of [`crate::nn`], and how a trained one is kept on disk
//! ([`checkpoint`]).

pub mod checkpoint;
pub mod denoise;
pub mod seq;

/// The largest a model may be, in trainable parameters: 2^31, 8 GiB of f32 weights (before
/// gradients and Adam's two moments). AtacWorks' model has about 10^6, scBasset's on a
/// million cells about 4·10^7; a setting beyond this is a typo or a damaged config.json, and
/// refusing it keeps a size read from a file from asking for terabytes.
pub const MAX_PARAMS: f64 = 2_147_483_648.0;

/// The largest channel count, kernel width or dilation a setting may name (2^16), so that
/// products of three settings stay far below `usize::MAX`.
pub const MAX_DIM: usize = 1 << 16;

/// Checks each named size against `limit`, then the model's parameter count (computed in
/// f64, so that it cannot overflow) against [`MAX_PARAMS`].
pub(crate) fn check_sizes(fields: &[(&str, usize, usize)], params: impl Fn() -> f64) -> Result<(), String> {
    if let Some((name, _, _)) = fields.iter().find(|(_, v, _)| *v == 0) {
        return Err(format!("model setting {name} must be at least 1"));
    }
    if let Some((name, v, limit)) = fields.iter().find(|(_, v, limit)| v > limit) {
        return Err(format!("model setting {name} is {v}: at most {limit} is accepted"));
    }
    let n = params();
    if n > MAX_PARAMS {
        return Err(format!(
            "these settings make a model of {n:.3e} parameters: at most {MAX_PARAMS:.3e} (8 GiB of weights) is accepted"
        ));
    }
    Ok(())
}

pub use denoise::{DenoiseConfig, DenoiseNet, DenoiseOutput};
pub use seq::{SeqBatch, SeqConfig, SeqNet};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bounds_take_the_published_models_and_refuse_absurd_ones() {
        assert!(DenoiseConfig::default().validate().is_ok());
        assert!(SeqConfig::scbasset(1_000_000).validate().is_ok());
        let mut seq = SeqConfig::scbasset(1000);
        seq.stem_filters = 1 << 20;
        assert_eq!(
            seq.validate().err().expect("refused"),
            "model setting stem_filters is 1048576: at most 65536 is accepted"
        );
        let mut seq = SeqConfig::scbasset(1 << 27);
        seq.bottleneck = 1 << 10;
        assert!(seq.validate().err().expect("refused").contains("parameters: at most"));
        seq.tower_filters.push(0);
        assert_eq!(seq.validate().err().expect("refused"), "every tower block needs at least 1 filter");
        let mut denoise = DenoiseConfig::default();
        denoise.cls_kernel = 0;
        assert_eq!(denoise.validate().err().expect("refused"), "model setting cls_kernel must be at least 1");
    }
}
