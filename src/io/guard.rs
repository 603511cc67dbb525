//! Inputs are never overwritten: before a command reads anything, every output it will
//! write is checked against every file it reads and every model directory it reads from.
//!
//! Two paths name the same file when both exist and share device and inode (hard links,
//! symbolic links, `./x` and `x` alike), or when the output does not exist yet but its
//! canonical location equals the input's. An output inside a model directory being read is
//! refused too, whatever its name.

use crate::error::FileError;
use std::path::{Path, PathBuf};

/// What a command reads and writes, named by the flags that gave them.
#[derive(Debug, Default, Clone)]
pub struct Files<'a> {
    inputs: Vec<(&'a str, PathBuf)>,
    dirs: Vec<(&'a str, PathBuf)>,
    outputs: Vec<(&'a str, PathBuf)>,
}

impl<'a> Files<'a> {
    pub fn new() -> Self {
        Files::default()
    }

    /// A file the command reads (ignored when it does not exist: reading it will say so).
    pub fn input(mut self, flag: &'a str, path: impl AsRef<Path>) -> Self {
        self.inputs.push((flag, path.as_ref().to_path_buf()));
        self
    }

    /// Every file of a list the command reads.
    pub fn inputs<P: AsRef<Path>>(mut self, flag: &'a str, paths: impl IntoIterator<Item = P>) -> Self {
        self.inputs.extend(paths.into_iter().map(|p| (flag, p.as_ref().to_path_buf())));
        self
    }

    /// A directory the command reads a model from: nothing may be written inside it.
    pub fn model_dir(self, flag: &'a str, dir: impl AsRef<Path>) -> Self {
        self.model_dirs(flag, [dir])
    }

    /// Every model directory of a list (e.g. an optional `--model`).
    pub fn model_dirs<P: AsRef<Path>>(mut self, flag: &'a str, dirs: impl IntoIterator<Item = P>) -> Self {
        self.dirs.extend(dirs.into_iter().map(|d| (flag, d.as_ref().to_path_buf())));
        self
    }

    /// A file the command writes.
    pub fn output(mut self, flag: &'a str, path: impl AsRef<Path>) -> Self {
        self.outputs.push((flag, path.as_ref().to_path_buf()));
        self
    }

    /// Every file of a list the command writes.
    pub fn outputs<P: AsRef<Path>>(mut self, flag: &'a str, paths: impl IntoIterator<Item = P>) -> Self {
        self.outputs.extend(paths.into_iter().map(|p| (flag, p.as_ref().to_path_buf())));
        self
    }

    /// Refuses an output that is an input, or lies inside a model directory read.
    pub fn check(&self) -> Result<(), FileError> {
        for (out_flag, out) in &self.outputs {
            for (in_flag, input) in &self.inputs {
                if same_file(out, input) {
                    return Err(FileError::content(
                        out,
                        format!(
                            "{out_flag} would overwrite the input {in_flag} {} (the same file): chromax never \
                             writes over its inputs; choose another output name",
                            input.display()
                        ),
                    ));
                }
            }
            for (dir_flag, dir) in &self.dirs {
                if inside(out, dir) {
                    return Err(FileError::content(
                        out,
                        format!(
                            "{out_flag} would write inside the model directory {dir_flag} {}, which this command \
                             reads; write it elsewhere",
                            dir.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where `path` is or would be: canonical when it exists, else its canonical directory
/// joined with its name.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Some(parent.canonicalize().ok()?.join(name))
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return x.dev() == y.dev() && x.ino() == y.ino();
    }
    matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

fn inside(path: &Path, dir: &Path) -> bool {
    match (resolved(path), dir.canonicalize()) {
        (Some(p), Ok(d)) => p.starts_with(d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_are_inputs_are_refused_by_any_name() {
        let dir = crate::io::scratch_dir("guard");
        std::fs::write(dir.join("x.bedGraph"), "c\t0\t1\t1\n").expect("write");
        std::fs::create_dir_all(dir.join("model")).expect("dir");
        std::os::unix::fs::symlink(dir.join("x.bedGraph"), dir.join("link")).expect("symlink");
        std::fs::hard_link(dir.join("x.bedGraph"), dir.join("hard")).expect("hard link");
        let files = |out: &Path| {
            Files::new()
                .input("TRACK", dir.join("x.bedGraph"))
                .model_dir("--model", dir.join("model"))
                .output("-o", out)
        };
        for out in [dir.join("x.bedGraph"), dir.join("model/../x.bedGraph"), dir.join("link"), dir.join("hard")] {
            let err = files(&out).check().expect_err("the input").to_string();
            assert!(err.contains("-o would overwrite the input TRACK") && err.contains("x.bedGraph"), "{err}");
        }
        let err = files(&dir.join("model/new.h5ad")).check().expect_err("inside the model").to_string();
        assert!(err.contains("inside the model directory --model"), "{err}");
        files(&dir.join("y.bedGraph")).check().expect("another file");
        files(&dir.join("missing-dir/y.bedGraph")).check().expect("a path that cannot resolve is not an input");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
