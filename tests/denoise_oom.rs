//! Running out of device memory in training gives the batch size that would fit. No GPU is
//! needed: a backend that wraps the CPU one and refuses allocations above a budget, as a GPU
//! would, stands in for it.

use chromax::backend::cpu::CpuBackend;
use chromax::backend::{Backend, BackendResult, BackendWrapper};
use chromax::denoise::train::{train, BestMetric, TrackPair, TrainOptions};
use chromax::error::BackendError;
use chromax::models::DenoiseConfig;

/// The CPU backend with a device memory of `capacity` bytes: any one buffer above a quarter
/// of it stands for the step not fitting, and fails as a GPU would.
struct SmallDevice {
    cpu: CpuBackend,
    capacity: usize,
}

impl BackendWrapper for SmallDevice {
    type Inner = CpuBackend;

    fn inner(&self) -> &CpuBackend {
        &self.cpu
    }

    fn describe(&self) -> String {
        "small test device".into()
    }

    fn zeros(&self, len: usize) -> BackendResult<Vec<f32>> {
        if len * 4 > self.capacity / 4 {
            return Err(BackendError::OutOfMemory {
                device: "small test device".into(),
                requested_mib: (len * 4) as f64 / 1048576.0,
                free_mib: self.capacity as f64 / 1048576.0,
            });
        }
        self.cpu.zeros(len)
    }

    fn free_memory(&self) -> Option<usize> {
        Some(self.capacity)
    }
}

#[test]
fn out_of_memory_names_a_batch_size_that_fits() {
    let dir = std::env::temp_dir().join(format!("chromax-oom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::env::set_var(chromax::store::CACHE_DIR_ENV, dir.join("cache"));
    std::fs::write(dir.join("g.sizes"), "c\t2000000\nv\t50000\n").expect("sizes");
    std::fs::write(dir.join("t.bedGraph"), "c\t0\t100000\t5\nc\t100000\t2000000\t7\nv\t0\t50000\t3\n").expect("track");
    std::fs::write(dir.join("p.bed"), "c\t1000\t2000\nv\t100\t900\n").expect("peaks");
    let t = dir.join("t.bedGraph");
    let cfg = DenoiseConfig {
        in_channels: 1,
        reg_blocks: 1,
        reg_filters: 8,
        reg_kernel: 5,
        reg_dilation: 1,
        cls_blocks: 1,
        cls_filters: 8,
        cls_kernel: 5,
        cls_dilation: 1,
    };
    let opts = TrainOptions {
        pairs: vec![TrackPair { noisy: t.clone(), clean: t, peaks: dir.join("p.bed") }],
        genome: dir.join("g.sizes"),
        val_chroms: vec!["v".into()],
        interval: 10_000,
        pad: 100,
        batch: 64,
        epochs: 1,
        best_metric: BestMetric::Loss,
        model: cfg,
        ..TrainOptions::default()
    };
    // Memory for six intervals: 64 do not fit, and the message says how many do.
    let per_interval = cfg.train_bytes_per_interval(10_200, false);
    let device = SmallDevice { cpu: CpuBackend::new(), capacity: 6 * per_interval };
    let err = train(&device, &opts, &dir.join("m64"), false, &mut |_| {}).expect_err("64 intervals do not fit");
    let msg = err.to_string();
    assert!(msg.contains("small test device ran out of memory") && msg.contains("--batch 5 would fit"), "{msg}");
    // And that batch size trains.
    let records =
        train(&device, &TrainOptions { batch: 5, ..opts }, &dir.join("m5"), false, &mut |_| {}).expect("batch 5 fits");
    assert_eq!(records.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
