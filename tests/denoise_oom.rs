//! Running out of device memory in training gives the batch size that would fit. No GPU is
//! needed: a backend that wraps the CPU one and refuses allocations above a budget, as a GPU
//! would, stands in for it.

use chromax::backend::cpu::CpuBackend;
use chromax::backend::{
    AdamParams, Backend, BackendResult, BatchNormParams, Conv1dParams, DenoiseLossParams, DropoutParams, LossParts,
    MaxPoolParams, SparseHeadParams,
};
use chromax::error::BackendError;
use chromax::models::DenoiseConfig;
use chromax::train::denoise::{train, BestMetric, TrackPair, TrainOptions};

/// The CPU backend with a device memory of `capacity` bytes: allocations larger than what is
/// free fail with [`BackendError::OutOfMemory`].
struct SmallDevice {
    cpu: CpuBackend,
    capacity: usize,
}

impl Backend for SmallDevice {
    type Elem = f32;
    type Buf = Vec<f32>;
    fn describe(&self) -> String {
        "small test device".into()
    }
    fn zeros(&self, len: usize) -> BackendResult<Vec<f32>> {
        // Any one buffer above a quarter of the memory stands for the step not fitting.
        if len * 4 > self.capacity / 4 {
            return Err(BackendError::OutOfMemory {
                device: self.describe(),
                requested_mib: (len * 4) as f64 / 1048576.0,
                free_mib: self.capacity as f64 / 1048576.0,
            });
        }
        self.cpu.zeros(len)
    }
    fn upload(&self, host: &[f32]) -> BackendResult<Vec<f32>> {
        self.cpu.upload(host)
    }
    fn download(&self, buf: &Vec<f32>, host: &mut [f32]) -> BackendResult<()> {
        self.cpu.download(buf, host)
    }
    fn copy_from_host(&self, host: &[f32], buf: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.copy_from_host(host, buf)
    }
    fn buf_len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn synchronize(&self) -> BackendResult<()> {
        Ok(())
    }
    fn free_memory(&self) -> Option<usize> {
        Some(self.capacity)
    }
    fn conv1d_fwd(
        &self,
        p: &Conv1dParams,
        x: &Vec<f32>,
        w: &Vec<f32>,
        b: Option<&Vec<f32>>,
        y: &mut Vec<f32>,
    ) -> BackendResult<()> {
        self.cpu.conv1d_fwd(p, x, w, b, y)
    }
    fn conv1d_bwd_input(&self, p: &Conv1dParams, dy: &Vec<f32>, w: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.conv1d_bwd_input(p, dy, w, dx)
    }
    fn conv1d_bwd_weight(
        &self,
        p: &Conv1dParams,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        dw: &mut Vec<f32>,
        db: Option<&mut Vec<f32>>,
    ) -> BackendResult<()> {
        self.cpu.conv1d_bwd_weight(p, x, dy, dw, db)
    }
    fn relu_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.relu_fwd(x, y)
    }
    fn relu_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.relu_bwd(y, dy, dx)
    }
    fn add_fwd(&self, a: &Vec<f32>, b: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.add_fwd(a, b, y)
    }
    fn sigmoid_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.sigmoid_fwd(x, y)
    }
    fn sigmoid_bwd(&self, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.sigmoid_bwd(y, dy, dx)
    }
    fn batchnorm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        g: &Vec<f32>,
        b: &Vec<f32>,
        y: &mut Vec<f32>,
        m: &mut Vec<f32>,
        s: &mut Vec<f32>,
        rm: &mut Vec<f32>,
        rv: &mut Vec<f32>,
    ) -> BackendResult<()> {
        self.cpu.batchnorm_fwd_train(p, x, g, b, y, m, s, rm, rv)
    }
    fn batchnorm_fwd_infer(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        g: &Vec<f32>,
        b: &Vec<f32>,
        rm: &Vec<f32>,
        rv: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> BackendResult<()> {
        self.cpu.batchnorm_fwd_infer(p, x, g, b, rm, rv, y)
    }
    fn batchnorm_bwd(
        &self,
        p: &BatchNormParams,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        g: &Vec<f32>,
        m: &Vec<f32>,
        s: &Vec<f32>,
        dx: &mut Vec<f32>,
        dg: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) -> BackendResult<()> {
        self.cpu.batchnorm_bwd(p, x, dy, g, m, s, dx, dg, db)
    }
    fn one_hot(
        &self,
        batch: usize,
        len: usize,
        codes: &[u8],
        reverse: &[bool],
        shift: &[i32],
        out: &mut Vec<f32>,
    ) -> BackendResult<()> {
        self.cpu.one_hot(batch, len, codes, reverse, shift, out)
    }
    fn dropout_fwd(&self, p: &DropoutParams, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.dropout_fwd(p, x, y)
    }
    fn dropout_bwd(&self, p: &DropoutParams, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.dropout_bwd(p, dy, dx)
    }
    fn maxpool_fwd(&self, p: &MaxPoolParams, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.maxpool_fwd(p, x, y)
    }
    fn maxpool_bwd(&self, p: &MaxPoolParams, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.maxpool_bwd(p, x, dy, dx)
    }
    fn gelu_fwd(&self, x: &Vec<f32>, y: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.gelu_fwd(x, y)
    }
    fn gelu_bwd(&self, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) -> BackendResult<()> {
        self.cpu.gelu_bwd(x, dy, dx)
    }
    fn denoise_loss(
        &self,
        p: &DenoiseLossParams,
        r: &Vec<f32>,
        c: &Vec<f32>,
        l: &Vec<f32>,
        m: &Vec<f32>,
        dr: &mut Vec<f32>,
        dc: &mut Vec<f32>,
    ) -> BackendResult<LossParts> {
        self.cpu.denoise_loss(p, r, c, l, m, dr, dc)
    }
    fn adam_step(
        &self,
        p: &AdamParams,
        t: &mut Vec<f32>,
        g: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
    ) -> BackendResult<()> {
        self.cpu.adam_step(p, t, g, m, v)
    }
    #[allow(clippy::too_many_arguments)]
    fn sparse_head(
        &self,
        p: &SparseHeadParams,
        z: &Vec<f32>,
        w: &Vec<f32>,
        b: &Vec<f32>,
        indptr: &[u32],
        indices: &[u32],
        dz: &mut Vec<f32>,
        dw: &mut Vec<f32>,
        db: &mut Vec<f32>,
    ) -> BackendResult<f64> {
        self.cpu.sparse_head(p, z, w, b, indptr, indices, dz, dw, db)
    }
    #[allow(clippy::too_many_arguments)]
    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        z: &Vec<f32>,
        w: &Vec<f32>,
        b: &Vec<f32>,
        indptr: &[u32],
        indices: &[u32],
        per_row: bool,
    ) -> BackendResult<Vec<u64>> {
        self.cpu.head_roc_histogram(p, z, w, b, indptr, indices, per_row)
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
    let per_interval = cfg.train_bytes_per_interval(10_200);
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
