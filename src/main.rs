//! The `chromax` binary: parses the command line, runs it, prints errors, sets the exit code.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// Keeps freed memory in the process for reuse. Every op of the CPU backend allocates its
/// output; glibc hands allocations above its mmap threshold (128 KiB to 32 MiB) to fresh
/// mappings and unmaps them on free, so each op paid page faults and the kernel's zeroing of
/// every page (a fifth of `denoise run`'s time with skipping, 13% of SeqNet training).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator tunables; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let parsed = cli::Cli::parse();
    match cli::run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
