//! The CUDA backend: the kernels of `kernels/`, compiled by NVRTC on first use for the
//! device's own architecture and launched through cudarc's driver API.
//!
//! cudarc loads libcuda and libnvrtc at run time, so nothing here needs CUDA to build. It
//! panics when a library is absent, so [`probe`] checks first and turns every reason CUDA
//! cannot be used into a one-line message. The [`Backend`] methods check shapes with the same
//! functions as the CPU backend, then call the op's launch code in the file of its stem,
//! which is written against the raw launch layer of `launch.rs`.

pub mod compile;
mod conv1d;
mod dropout;
mod elementwise;
#[cfg(test)]
mod emulator_tests;
mod launch;
mod loss;
mod norm;
mod onehot;
mod optim;
mod pool;
mod sparse_head;

use super::{
    check_len, AdamParams, Backend, BackendResult, BatchNormParams, Conv1dParams, DenoiseLossParams, DropoutParams,
    LossParts, MaxPoolParams, SparseHeadParams,
};
use crate::error::BackendError;
use crate::kernels::kernel_file;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DriverError};
use launch::{Geometry, KArg, KernelDevice};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The oldest driver chromax's CUDA backend is built for: CUDA 13.0.
const MIN_DRIVER_VERSION: i32 = 13000;

/// One CUDA device as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub total_memory: usize,
    pub compute_capability: (i32, i32),
    pub multiprocessors: i32,
}

/// What [`probe`] found: the driver, NVRTC and the devices, and the reason CUDA cannot be
/// used if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaProbe {
    /// CUDA version the driver supports, e.g. (13, 0).
    pub driver_version: (i32, i32),
    pub nvrtc_version: Option<(i32, i32)>,
    pub devices: Vec<CudaDeviceInfo>,
    /// Why the devices cannot run chromax's kernels, if they cannot.
    pub problem: Option<String>,
}

/// Looks for a usable CUDA driver, devices and NVRTC. Never panics: an absent driver is
/// `Err(CudaUnavailable("no NVIDIA driver…"))`; an absent or mismatched NVRTC is reported in
/// [`CudaProbe::problem`] with the devices still listed.
pub fn probe() -> BackendResult<CudaProbe> {
    std::panic::catch_unwind(probe_driver).unwrap_or_else(|_| {
        Err(BackendError::CudaUnavailable(
            "the CUDA driver library loaded but a call into it failed (a driver older than CUDA 13.0?)".into(),
        ))
    })
}

fn unavailable(what: impl Into<String>) -> BackendError {
    BackendError::CudaUnavailable(what.into())
}

fn probe_driver() -> BackendResult<CudaProbe> {
    use cudarc::driver::{result, sys};
    // SAFETY: only tries to dlopen the candidate library names; no symbol is called.
    if !unsafe { sys::is_culib_present() } {
        return Err(unavailable(
            "no NVIDIA driver: libcuda.so could not be loaded (no GPU, or the driver is not installed)",
        ));
    }
    result::init().map_err(|e| unavailable(format!("the NVIDIA driver failed to initialise: {e}")))?;
    let mut version = 0;
    // SAFETY: the driver is loaded and initialised; the pointer is valid for a write.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| unavailable(format!("cannot read the driver version: {e}")))?;
    let driver_version = (version / 1000, (version % 1000) / 10);
    let count = result::device::get_count().map_err(|e| unavailable(format!("cannot count CUDA devices: {e}")))?;
    if count <= 0 {
        return Err(unavailable("the NVIDIA driver is loaded but reports no CUDA device"));
    }
    let mut devices = Vec::new();
    for ordinal in 0..count {
        let err = |e: DriverError| unavailable(format!("cannot query CUDA device {ordinal}: {e}"));
        let dev = result::device::get(ordinal).map_err(err)?;
        let attr = |a| {
            // SAFETY: dev is a valid device handle from cuDeviceGet.
            unsafe { result::device::get_attribute(dev, a) }.map_err(err)
        };
        devices.push(CudaDeviceInfo {
            ordinal: ordinal as usize,
            name: result::device::get_name(dev).map_err(err)?,
            // SAFETY: dev is a valid device handle from cuDeviceGet.
            total_memory: unsafe { result::device::total_mem(dev) }.map_err(err)?,
            compute_capability: (
                attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            multiprocessors: attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        });
    }

    let nvrtc_version = compile::nvrtc_version();
    let problem = if version < MIN_DRIVER_VERSION {
        Some(format!(
            "the driver supports CUDA {}.{} but chromax's CUDA backend needs 13.0 or newer: update the NVIDIA driver",
            driver_version.0, driver_version.1
        ))
    } else {
        match nvrtc_version {
            None => Some(compile::nvrtc_missing_message()),
            Some(v) if v > driver_version => Some(format!(
                "NVRTC {}.{} is newer than the driver's CUDA {}.{}: the driver would reject its PTX; \
                 use NVRTC {}.{} (e.g. pip install nvidia-cuda-nvrtc=={}.{}.*)",
                v.0,
                v.1,
                driver_version.0,
                driver_version.1,
                driver_version.0,
                driver_version.1,
                driver_version.0,
                driver_version.1
            )),
            Some(_) => None,
        }
    };
    Ok(CudaProbe { driver_version, nvrtc_version, devices, problem })
}

/// The CUDA backend on one device: a context, one stream, the kernels compiled so far.
///
/// All work goes to one stream, so cudarc's per-buffer event tracking is switched off: the
/// stream itself orders every copy, launch and free.
pub struct CudaBackend {
    info: CudaDeviceInfo,
    arch: String,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
}

impl CudaBackend {
    /// Opens device `ordinal` (`cuda:N`). Fails with a one-line reason when CUDA is not usable.
    pub fn new(ordinal: usize) -> BackendResult<Self> {
        let probe = probe()?;
        if let Some(problem) = probe.problem {
            return Err(unavailable(problem));
        }
        let n = probe.devices.len();
        let info = probe.devices.into_iter().nth(ordinal).ok_or_else(|| {
            unavailable(format!(
                "cuda:{ordinal} does not exist: {n} device(s) found, cuda:0 to cuda:{}",
                n.saturating_sub(1)
            ))
        })?;
        let ctx = CudaContext::new(ordinal).map_err(driver_err(format!("creating a context on cuda:{ordinal}")))?;
        // SAFETY: every buffer of this backend is used on its one stream only, which orders
        // all uses and frees; no buffer was created before this call.
        unsafe { ctx.disable_event_tracking() };
        let arch = format!("sm_{}{}", info.compute_capability.0, info.compute_capability.1);
        Ok(CudaBackend {
            info,
            arch,
            stream: ctx.default_stream(),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    pub fn info(&self) -> &CudaDeviceInfo {
        &self.info
    }

    /// The architecture kernels are compiled for, e.g. `sm_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The kernel `name` of `kernels/<stem>.cu`, compiling and loading the file on first use.
    fn function(&self, stem: &'static str, name: &'static str) -> BackendResult<CudaFunction> {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = functions.get(name) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(stem) {
                Some(m) => m.clone(),
                None => {
                    let kernel = kernel_file(stem).ok_or_else(|| BackendError::KernelCompile {
                        file: format!("{stem}.cu"),
                        arch: self.arch.clone(),
                        log: "no such kernel file is embedded in this build".into(),
                    })?;
                    let ptx = compile::cached_ptx(kernel, &self.arch)?;
                    let m = self
                        .stream
                        .context()
                        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                        .map_err(driver_err(format!("loading the PTX of kernels/{}", kernel.file)))?;
                    modules.insert(stem, m.clone());
                    m
                }
            }
        };
        let f =
            module.load_function(name).map_err(driver_err(format!("finding kernel {name} in kernels/{stem}.cu")))?;
        functions.insert(name, f.clone());
        Ok(f)
    }

    /// A zero-filled device buffer, with an out-of-memory error that says how much was asked
    /// for and how much is free.
    fn alloc_zeros<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> BackendResult<CudaSlice<T>> {
        // CUDA cannot allocate zero bytes; an empty buffer holds one unused element.
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(|e| {
            let mib = (len * std::mem::size_of::<T>()) as f64 / (1u64 << 20) as f64;
            let free = self
                .stream
                .context()
                .mem_get_info()
                .map(|(free, _)| free as f64 / (1u64 << 20) as f64)
                .unwrap_or(f64::NAN);
            if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                BackendError::OutOfMemory { device: self.describe(), requested_mib: mib, free_mib: free }
            } else {
                BackendError::Cuda {
                    context: format!("allocating {mib:.1} MiB on {}", self.describe()),
                    message: e.to_string(),
                }
            }
        })
    }

    /// A batch's CSR rows on the device (an empty `indices` becomes one unused zero, as a
    /// zero-length allocation has no address).
    fn upload_rows(&self, indptr: &[u32], indices: &[u32]) -> BackendResult<(CudaSlice<u32>, CudaSlice<u32>)> {
        let indptr_d = self.stream.clone_htod(indptr).map_err(driver_err("copying CSR offsets to the device"))?;
        let indices_d = if indices.is_empty() {
            self.alloc_zeros::<u32>(1)?
        } else {
            self.stream.clone_htod(indices).map_err(driver_err("copying CSR indices to the device"))?
        };
        Ok((indptr_d, indices_d))
    }

    /// The device address of a buffer. Event tracking is off, so there is nothing to record.
    fn ptr<T>(&self, buf: &CudaSlice<T>) -> u64 {
        let (ptr, _no_events) = buf.device_ptr(&self.stream);
        ptr
    }
}

impl KernelDevice for CudaBackend {
    type Scratch = CudaSlice<u8>;

    fn scratch(&self, bytes: usize) -> BackendResult<CudaSlice<u8>> {
        self.alloc_zeros::<u8>(bytes)
    }

    fn scratch_ptr(&self, scratch: &CudaSlice<u8>) -> u64 {
        self.ptr(scratch)
    }

    fn read_f64(&self, scratch: &CudaSlice<u8>, out: &mut [f64]) -> BackendResult<()> {
        let mut bytes = vec![0u8; out.len() * 8];
        let view = scratch.slice(0..bytes.len());
        self.stream.memcpy_dtoh(&view, &mut bytes[..]).map_err(driver_err("copying results to the host"))?;
        self.synchronize()?;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *o = f64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
        }
        Ok(())
    }

    fn read_u64(&self, scratch: &CudaSlice<u8>, out: &mut [u64]) -> BackendResult<()> {
        let mut bytes = vec![0u8; out.len() * 8];
        let view = scratch.slice(0..bytes.len());
        self.stream.memcpy_dtoh(&view, &mut bytes[..]).map_err(driver_err("copying counts to the host"))?;
        self.synchronize()?;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *o = u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
        }
        Ok(())
    }

    unsafe fn launch(&self, stem: &'static str, name: &'static str, g: Geometry, args: &[KArg]) -> BackendResult<()> {
        let f = self.function(stem, name)?;
        if g.shared_bytes as usize > 48 * 1024 {
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                g.shared_bytes as i32,
            )
            .map_err(driver_err(format!("raising the shared-memory limit of {name}")))?;
        }
        self.stream.context().bind_to_thread().map_err(driver_err("binding the CUDA context"))?;
        launch::with_kernel_params(args, |params| {
            // SAFETY: the caller guarantees args match the kernel's parameters and the buffers
            // cover the grid; params points at copies of the arguments that outlive the call.
            unsafe {
                cudarc::driver::result::launch_kernel(
                    f.cu_function(),
                    g.grid,
                    g.block,
                    g.shared_bytes,
                    self.stream.cu_stream(),
                    params,
                )
            }
        })
        .map_err(driver_err(format!(
            "launching {name} with grid {:?}, block {:?}, {} B shared",
            g.grid, g.block, g.shared_bytes
        )))
    }

    fn multiprocessors(&self) -> usize {
        self.info.multiprocessors.max(1) as usize
    }
}

/// Maps a driver error to a backend error that says what was being done.
pub(crate) fn driver_err(context: impl Into<String>) -> impl FnOnce(DriverError) -> BackendError {
    let context = context.into();
    move |e| BackendError::Cuda { context, message: e.to_string() }
}

/// A shape dimension as the `int` the kernels take, or an error naming it.
pub(crate) fn as_i32(op: &'static str, name: &str, v: usize) -> BackendResult<i32> {
    i32::try_from(v).map_err(|_| BackendError::Unsupported {
        op,
        what: format!("{name} = {v} exceeds the CUDA kernels' 32-bit index range ({})", i32::MAX),
    })
}

fn same_len(op: &'static str, bufs: &[(&str, usize)]) -> BackendResult<usize> {
    let n = bufs[0].1;
    for &(name, len) in &bufs[1..] {
        check_len(op, name, len, n)?;
    }
    Ok(n)
}

impl Backend for CudaBackend {
    type Elem = f32;
    type Buf = CudaSlice<f32>;

    fn describe(&self) -> String {
        format!("cuda:{} {} ({})", self.info.ordinal, self.info.name, self.arch)
    }

    fn zeros(&self, len: usize) -> BackendResult<CudaSlice<f32>> {
        self.alloc_zeros(len)
    }

    fn upload(&self, host: &[f32]) -> BackendResult<CudaSlice<f32>> {
        let mut buf = self.alloc_zeros::<f32>(host.len())?;
        if !host.is_empty() {
            self.stream.memcpy_htod(host, &mut buf).map_err(driver_err("copying to the device"))?;
        }
        Ok(buf)
    }

    fn download(&self, buf: &CudaSlice<f32>, host: &mut [f32]) -> BackendResult<()> {
        check_len("download", "host", host.len(), buf.len())?;
        self.stream.memcpy_dtoh(buf, host).map_err(driver_err("copying from the device"))?;
        self.synchronize()
    }

    fn copy_from_host(&self, host: &[f32], buf: &mut CudaSlice<f32>) -> BackendResult<()> {
        check_len("copy_from_host", "host", host.len(), buf.len())?;
        self.stream.memcpy_htod(host, buf).map_err(driver_err("copying to the device"))
    }

    fn buf_len(&self, buf: &CudaSlice<f32>) -> usize {
        buf.len()
    }

    fn synchronize(&self) -> BackendResult<()> {
        self.stream.synchronize().map_err(driver_err(format!("running kernels on cuda:{}", self.info.ordinal)))
    }

    fn free_memory(&self) -> Option<usize> {
        self.stream.context().mem_get_info().ok().map(|(free, _)| free)
    }

    fn host_buffer(&self, len: usize) -> BackendResult<super::HostBuffer> {
        // SAFETY: a plain page-locked allocation of len f32 values (flags 0: cached, so the
        // producer thread may also read it); the slice is only exposed through as_slice /
        // as_mut_slice, which wait for pending copies.
        let pinned = unsafe { self.stream.context().alloc_pinned_with_flags::<f32>(len.max(1), 0) }.map_err(
            driver_err(format!("allocating {:.1} MiB of pinned host memory", (len * 4) as f64 / (1u64 << 20) as f64)),
        )?;
        Ok(super::HostBuffer::Pinned(pinned))
    }

    fn upload_f32(&self, host: &[f32]) -> BackendResult<CudaSlice<f32>> {
        self.upload(host)
    }

    fn conv1d_fwd(
        &self,
        p: &Conv1dParams,
        x: &Self::Buf,
        w: &Self::Buf,
        bias: Option<&Self::Buf>,
        y: &mut Self::Buf,
    ) -> BackendResult<()> {
        p.check_fwd(x.len(), w.len(), bias.map(|b| b.len()), y.len())?;
        let bias = bias.map(|b| self.ptr(b));
        // SAFETY: the buffer lengths match p (checked above).
        unsafe { conv1d::conv1d_fwd(self, p, self.ptr(x), self.ptr(w), bias, self.ptr(y)) }
    }

    fn conv1d_bwd_input(
        &self,
        p: &Conv1dParams,
        dy: &Self::Buf,
        w: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> BackendResult<()> {
        p.check_bwd_input(dy.len(), w.len(), dx.len())?;
        // SAFETY: the buffer lengths match p (checked above).
        unsafe { conv1d::conv1d_bwd_input(self, p, self.ptr(dy), self.ptr(w), self.ptr(dx)) }
    }

    fn conv1d_bwd_weight(
        &self,
        p: &Conv1dParams,
        x: &Self::Buf,
        dy: &Self::Buf,
        dw: &mut Self::Buf,
        dbias: Option<&mut Self::Buf>,
    ) -> BackendResult<()> {
        p.check_bwd_weight(x.len(), dy.len(), dw.len(), dbias.as_ref().map(|b| b.len()))?;
        let dbias = dbias.map(|b| self.ptr(b));
        // SAFETY: the buffer lengths match p (checked above).
        unsafe { conv1d::conv1d_bwd_weight(self, p, self.ptr(x), self.ptr(dy), self.ptr(dw), dbias) }
    }

    fn relu_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("relu_fwd", &[("x", x.len()), ("y", y.len())])?;
        // SAFETY: both buffers hold n floats (checked above).
        unsafe { elementwise::unary(self, "relu_fwd_f32", self.ptr(x), self.ptr(y), n) }
    }

    fn relu_bwd(&self, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("relu_bwd", &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
        // SAFETY: the three buffers hold n floats (checked above).
        unsafe { elementwise::binary(self, "relu_bwd_f32", self.ptr(y), self.ptr(dy), self.ptr(dx), n) }
    }

    fn add_fwd(&self, a: &Self::Buf, b: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("add_fwd", &[("a", a.len()), ("b", b.len()), ("y", y.len())])?;
        // SAFETY: the three buffers hold n floats (checked above).
        unsafe { elementwise::binary(self, "add_fwd_f32", self.ptr(a), self.ptr(b), self.ptr(y), n) }
    }

    fn sigmoid_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("sigmoid_fwd", &[("x", x.len()), ("y", y.len())])?;
        // SAFETY: both buffers hold n floats (checked above).
        unsafe { elementwise::unary(self, "sigmoid_fwd_f32", self.ptr(x), self.ptr(y), n) }
    }

    fn sigmoid_bwd(&self, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("sigmoid_bwd", &[("y", y.len()), ("dy", dy.len()), ("dx", dx.len())])?;
        // SAFETY: the three buffers hold n floats (checked above).
        unsafe { elementwise::binary(self, "sigmoid_bwd_f32", self.ptr(y), self.ptr(dy), self.ptr(dx), n) }
    }

    fn batchnorm_fwd_train(
        &self,
        p: &BatchNormParams,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
        mean: &mut Self::Buf,
        invstd: &mut Self::Buf,
        running_mean: &mut Self::Buf,
        running_var: &mut Self::Buf,
    ) -> BackendResult<()> {
        p.check_fwd_train([
            x.len(),
            y.len(),
            gamma.len(),
            beta.len(),
            mean.len(),
            invstd.len(),
            running_mean.len(),
            running_var.len(),
        ])?;
        // SAFETY: lengths checked above.
        unsafe {
            norm::fwd_train(
                self,
                p,
                self.ptr(x),
                self.ptr(gamma),
                self.ptr(beta),
                self.ptr(y),
                self.ptr(mean),
                self.ptr(invstd),
                self.ptr(running_mean),
                self.ptr(running_var),
            )
        }
    }

    fn batchnorm_fwd_infer(
        &self,
        p: &BatchNormParams,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        y: &mut Self::Buf,
    ) -> BackendResult<()> {
        p.check_fwd_infer([x.len(), y.len(), gamma.len(), beta.len(), running_mean.len(), running_var.len()])?;
        // SAFETY: lengths checked above.
        unsafe {
            norm::fwd_infer(
                self,
                p,
                self.ptr(x),
                self.ptr(gamma),
                self.ptr(beta),
                self.ptr(running_mean),
                self.ptr(running_var),
                self.ptr(y),
            )
        }
    }

    fn batchnorm_bwd(
        &self,
        p: &BatchNormParams,
        x: &Self::Buf,
        dy: &Self::Buf,
        gamma: &Self::Buf,
        mean: &Self::Buf,
        invstd: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    ) -> BackendResult<()> {
        p.check_bwd([x.len(), dy.len(), dx.len(), gamma.len(), mean.len(), invstd.len(), dgamma.len(), dbeta.len()])?;
        // SAFETY: lengths checked above.
        unsafe {
            norm::bwd(
                self,
                p,
                self.ptr(x),
                self.ptr(dy),
                self.ptr(gamma),
                self.ptr(mean),
                self.ptr(invstd),
                self.ptr(dx),
                self.ptr(dgamma),
                self.ptr(dbeta),
            )
        }
    }

    fn one_hot(
        &self,
        batch: usize,
        len: usize,
        codes: &[u8],
        reverse: &[bool],
        shift: &[i32],
        out: &mut Self::Buf,
    ) -> BackendResult<()> {
        super::check_one_hot(batch, len, codes, reverse, shift, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        // One byte per base crosses to the device; the expansion to 4 floats happens there.
        let codes_d = self.stream.clone_htod(codes).map_err(driver_err("copying base codes to the device"))?;
        let flags: Vec<u8> = reverse.iter().map(|&r| u8::from(r)).collect();
        let flags_d = self.stream.clone_htod(&flags).map_err(driver_err("copying reverse flags to the device"))?;
        let shift_d = self.stream.clone_htod(shift).map_err(driver_err("copying shifts to the device"))?;
        // SAFETY: lengths and shifts checked above; the copies live until the launch completes
        // (the buffers' drop is ordered on the same stream).
        unsafe {
            onehot::one_hot(self, batch, len, self.ptr(&codes_d), self.ptr(&flags_d), self.ptr(&shift_d), self.ptr(out))
        }
    }

    fn dropout_fwd(&self, p: &DropoutParams, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()> {
        p.check_fwd(x.len(), y.len())?;
        // SAFETY: both buffers hold x.len() floats (checked above).
        unsafe { dropout::dropout(self, "dropout_fwd_f32", p, self.ptr(x), self.ptr(y), x.len()) }
    }

    fn dropout_bwd(&self, p: &DropoutParams, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()> {
        p.check_bwd(dy.len(), dx.len())?;
        // SAFETY: both buffers hold dy.len() floats (checked above).
        unsafe { dropout::dropout(self, "dropout_bwd_f32", p, self.ptr(dy), self.ptr(dx), dy.len()) }
    }

    fn maxpool_fwd(&self, p: &MaxPoolParams, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()> {
        p.check("maxpool_fwd", x.len(), y.len())?;
        // SAFETY: lengths checked above.
        unsafe { pool::maxpool_fwd(self, p, self.ptr(x), self.ptr(y)) }
    }

    fn maxpool_bwd(&self, p: &MaxPoolParams, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()> {
        p.check("maxpool_bwd", x.len(), dy.len())?;
        check_len("maxpool_bwd", "dx", dx.len(), x.len())?;
        // SAFETY: lengths checked above.
        unsafe { pool::maxpool_bwd(self, p, self.ptr(x), self.ptr(dy), self.ptr(dx)) }
    }

    fn gelu_fwd(&self, x: &Self::Buf, y: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("gelu_fwd", &[("x", x.len()), ("y", y.len())])?;
        // SAFETY: both buffers hold n floats (checked above).
        unsafe { elementwise::unary(self, "gelu_fwd_f32", self.ptr(x), self.ptr(y), n) }
    }

    fn gelu_bwd(&self, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) -> BackendResult<()> {
        let n = same_len("gelu_bwd", &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())])?;
        // SAFETY: the three buffers hold n floats (checked above).
        unsafe { elementwise::binary(self, "gelu_bwd_f32", self.ptr(x), self.ptr(dy), self.ptr(dx), n) }
    }

    fn denoise_loss(
        &self,
        p: &DenoiseLossParams,
        reg: &Self::Buf,
        clean: &Self::Buf,
        cls_logits: &Self::Buf,
        mask: &Self::Buf,
        d_reg: &mut Self::Buf,
        d_cls: &mut Self::Buf,
    ) -> BackendResult<LossParts> {
        p.check([reg.len(), clean.len(), cls_logits.len(), mask.len(), d_reg.len(), d_cls.len()])?;
        let [reg, clean, logits, mask, d_reg, d_cls] =
            [&*reg, clean, cls_logits, mask, &*d_reg, &*d_cls].map(|b| self.ptr(b));
        // SAFETY: the six buffers hold batch·len floats (checked above).
        unsafe { loss::denoise_loss(self, p, reg, clean, logits, mask, d_reg, d_cls) }
    }

    fn adam_step(
        &self,
        p: &AdamParams,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
    ) -> BackendResult<()> {
        p.check(param.len(), grad.len(), m.len(), v.len())?;
        // SAFETY: the four buffers hold param.len() floats (checked above).
        unsafe { optim::adam_step(self, p, self.ptr(param), self.ptr(grad), self.ptr(m), self.ptr(v), param.len()) }
    }

    fn sparse_head(
        &self,
        p: &SparseHeadParams,
        z: &Self::Buf,
        w: &Self::Buf,
        bias: &Self::Buf,
        indptr: &[u32],
        indices: &[u32],
        dz: &mut Self::Buf,
        dw: &mut Self::Buf,
        dbias: &mut Self::Buf,
    ) -> BackendResult<f64> {
        p.check([z.len(), w.len(), bias.len(), dz.len(), dw.len(), dbias.len()], indptr, indices)?;
        // The batch's rows are small beside the model: copied per call.
        let (indptr_d, indices_d) = self.upload_rows(indptr, indices)?;
        // SAFETY: lengths and CSR rows checked above; the u32 arrays live until the read-back
        // at the end of the call, which synchronises the stream.
        unsafe {
            sparse_head::sparse_head(
                self,
                p,
                self.ptr(z),
                self.ptr(w),
                self.ptr(bias),
                self.ptr(&indptr_d),
                self.ptr(&indices_d),
                self.ptr(dz),
                self.ptr(dw),
                self.ptr(dbias),
            )
        }
    }

    fn head_roc_histogram(
        &self,
        p: &SparseHeadParams,
        z: &Self::Buf,
        w: &Self::Buf,
        bias: &Self::Buf,
        indptr: &[u32],
        indices: &[u32],
        per_row: bool,
    ) -> BackendResult<Vec<u64>> {
        p.check_forward("head_roc_histogram", [z.len(), w.len(), bias.len()], indptr, indices)?;
        let (indptr_d, indices_d) = self.upload_rows(indptr, indices)?;
        // SAFETY: lengths and CSR rows checked above; the u32 arrays live until the read-back
        // at the end of the call, which synchronises the stream.
        unsafe {
            sparse_head::head_roc_histogram(
                self,
                p,
                self.ptr(z),
                self.ptr(w),
                self.ptr(bias),
                self.ptr(&indptr_d),
                self.ptr(&indices_d),
                per_row,
            )
        }
    }
}
