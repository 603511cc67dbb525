//! Metrics, pure functions of arrays: exact Pearson, Spearman, MSE, AUROC and AUPRC over whole
//! genomes ([`metrics`]), and the histogram AUROC of logits binned on the device ([`roc`]).
//! The evaluation pipelines live with their tasks ([`crate::denoise::eval`]).

pub mod metrics;
pub mod roc;
