//! One CUDA device through the driver: a context, one stream, the kernels compiled so far.

use super::launch::{with_kernel_params, Geometry, KArg, KernelDevice};
use super::{compile, driver_err, probe, unavailable, CudaDeviceInfo};
use crate::backend::{BackendResult, HostBuffer};
use crate::error::BackendError;
use crate::kernels::kernel_file;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A CUDA device as [`KernelDevice`]: all work goes to one stream, so cudarc's per-buffer
/// event tracking is switched off and the stream itself orders every copy, launch and free.
pub struct CudaDevice {
    info: CudaDeviceInfo,
    arch: String,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
}

impl CudaDevice {
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
        // SAFETY: every buffer of this device is used on its one stream only, which orders
        // all uses and frees; no buffer was created before this call.
        unsafe { ctx.disable_event_tracking() };
        let arch = format!("sm_{}{}", info.compute_capability.0, info.compute_capability.1);
        Ok(CudaDevice {
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
                    // Machine code for this device where NVRTC makes it (no driver JIT);
                    // PTX where it does not, or where the driver refuses the machine code.
                    let context = self.stream.context();
                    let load_ptx = |ptx: Option<String>, what: String| -> BackendResult<_> {
                        let ptx = match ptx {
                            Some(ptx) => ptx,
                            None => compile::cached_ptx(kernel, &self.arch)?,
                        };
                        context.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(driver_err(what))
                    };
                    let what = format!("loading the PTX of kernels/{}", kernel.file);
                    let m = match compile::cached_image(kernel, &self.arch)? {
                        compile::KernelImage::Cubin(cubin) => {
                            match context.load_module(cudarc::nvrtc::Ptx::from_binary(cubin)) {
                                Ok(m) => m,
                                // Both failing (a context already broken by an earlier fault,
                                // say) names the first failure too.
                                Err(first) => {
                                    load_ptx(None, format!("{what}, after its sm machine code failed ({first})"))?
                                }
                            }
                        }
                        compile::KernelImage::Ptx(ptx) => load_ptx(Some(ptx), what)?,
                    };
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

    /// The device address of a buffer. Event tracking is off, so there is nothing to record.
    fn address<T>(&self, buf: &CudaSlice<T>) -> u64 {
        let (ptr, _no_events) = buf.device_ptr(&self.stream);
        ptr
    }

    fn read_words(&self, scratch: &CudaSlice<u8>, words: usize) -> BackendResult<Vec<[u8; 8]>> {
        let mut bytes = vec![0u8; words * 8];
        let view = scratch.slice(0..bytes.len());
        self.stream.memcpy_dtoh(&view, &mut bytes[..]).map_err(driver_err("copying results to the host"))?;
        self.synchronize()?;
        Ok(bytes.chunks_exact(8).map(|b| b.try_into().unwrap_or([0; 8])).collect())
    }
}

impl KernelDevice for CudaDevice {
    type Buf = CudaSlice<f32>;
    type Scratch = CudaSlice<u8>;

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
        if !host.is_empty() {
            self.stream.memcpy_dtoh(buf, host).map_err(driver_err("copying from the device"))?;
        }
        self.synchronize()
    }

    fn copy_from_host(&self, host: &[f32], buf: &mut CudaSlice<f32>) -> BackendResult<()> {
        if host.is_empty() {
            return Ok(());
        }
        self.stream.memcpy_htod(host, buf).map_err(driver_err("copying to the device"))
    }

    fn synchronize(&self) -> BackendResult<()> {
        self.stream.synchronize().map_err(driver_err(format!("running kernels on cuda:{}", self.info.ordinal)))
    }

    fn free_memory(&self) -> Option<usize> {
        self.stream.context().mem_get_info().ok().map(|(free, _)| free)
    }

    fn host_buffer(&self, len: usize) -> BackendResult<HostBuffer> {
        // SAFETY: a plain page-locked allocation of len f32 values (flags 0: cached, so the
        // producer thread may also read it); the slice is only exposed through as_slice /
        // as_mut_slice, which wait for pending copies.
        let pinned = unsafe { self.stream.context().alloc_pinned_with_flags::<f32>(len.max(1), 0) }.map_err(
            driver_err(format!("allocating {:.1} MiB of pinned host memory", (len * 4) as f64 / (1u64 << 20) as f64)),
        )?;
        Ok(HostBuffer::Pinned(pinned))
    }

    fn ptr(&self, buf: &CudaSlice<f32>) -> u64 {
        self.address(buf)
    }

    fn ptr_mut(&self, buf: &mut CudaSlice<f32>) -> u64 {
        self.address(buf)
    }

    fn scratch(&self, bytes: usize) -> BackendResult<CudaSlice<u8>> {
        self.alloc_zeros::<u8>(bytes.max(8))
    }

    fn scratch_from(&self, bytes: &[u8]) -> BackendResult<CudaSlice<u8>> {
        if bytes.is_empty() {
            return self.scratch(8);
        }
        self.stream.clone_htod(bytes).map_err(driver_err("copying an op's inputs to the device"))
    }

    fn scratch_ptr(&self, scratch: &mut CudaSlice<u8>) -> u64 {
        self.address(scratch)
    }

    fn read_f64(&self, scratch: &CudaSlice<u8>, out: &mut [f64]) -> BackendResult<()> {
        let words = self.read_words(scratch, out.len())?;
        for (o, w) in out.iter_mut().zip(words) {
            *o = f64::from_ne_bytes(w);
        }
        Ok(())
    }

    fn read_u64(&self, scratch: &CudaSlice<u8>, out: &mut [u64]) -> BackendResult<()> {
        let words = self.read_words(scratch, out.len())?;
        for (o, w) in out.iter_mut().zip(words) {
            *o = u64::from_ne_bytes(w);
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
        with_kernel_params(args, |params| {
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
