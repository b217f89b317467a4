//! Finding CUDA's user-space libraries (cuBLAS, NVRTC) whatever CUDA version the machine has,
//! and saying which were loaded.
//!
//! cudarc, built for CUDA 12.0's entry points, opens `libcublas.so`, `libcublas.so.12`,
//! `.so.11` … but never `.so.13`: on a CUDA 13 machine without the unversioned development
//! links it finds no cuBLAS, and GEMM phases would silently become spin kernels. The entry
//! points the harness calls are the same in every version since, so [`ensure_loadable`] looks
//! for versioned files itself (the library path, `ldconfig`'s cache, the CUDA toolkit's usual
//! folders, NVIDIA's Python wheels, and `GPUSHARE_CUDA_LIBS`), links the newest under the
//! names cudarc asks for in a folder of their own, and starts the command again with that
//! folder first on `LD_LIBRARY_PATH` (the dynamic loader reads it once, at start). Worker
//! processes inherit it. [`report`] says which file each library was loaded from.

use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Set in the environment of a command started again by [`ensure_loadable`]: the folder of
/// links it put first on the library path.
pub const SHIM_ENV: &str = "GPUSHARE_CUDA_LIB_SHIM";
/// Extra folders to search, `:`-separated.
pub const DIRS_ENV: &str = "GPUSHARE_CUDA_LIBS";

/// The libraries the harness may need beyond the driver, by cudarc's base names.
const WANTED: [&str; 2] = ["cublas", "nvrtc"];

/// Which libraries were loaded from where: `replay.json`, the probe, the calibration's notes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LibrariesReport {
    /// The file each was loaded from; `None`: not loadable here.
    pub driver: Option<String>,
    pub cublas: Option<String>,
    pub nvrtc: Option<String>,
    /// The folder of links put first on the library path, when versioned files were needed.
    pub shim: Option<String>,
}

/// Folders that may hold CUDA libraries, in the order searched.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for var in [DIRS_ENV, "LD_LIBRARY_PATH"] {
        if let Some(v) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
        }
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var).map(PathBuf::from) {
            dirs.push(root.join("lib64"));
            dirs.push(root.join("targets/x86_64-linux/lib"));
        }
    }
    for d in [
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/local/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs.extend(
        children(Path::new("/usr/local"), "cuda-")
            .iter()
            .map(|d| d.join("lib64")),
    );
    dirs.extend(python_wheel_dirs());
    dirs.extend(ldconfig_dirs());
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| d.is_dir() && seen.insert(d.clone()));
    dirs
}

/// Entries of `dir` whose names start with `prefix`, sorted.
fn children(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// `nvidia/*/lib` of the Python environments a GPU machine usually has (NVIDIA's wheels:
/// `nvidia-cublas`, `nvidia-cuda-nvrtc`, and CUDA 13's `nvidia/cu13/lib`).
fn python_wheel_dirs() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for base in ["/usr/lib", "/usr/local/lib", "/opt/conda/lib"] {
        roots.extend(
            children(Path::new(base), "python3")
                .iter()
                .flat_map(|p| [p.join("dist-packages"), p.join("site-packages")]),
        );
    }
    for opt in children(Path::new("/opt"), "") {
        for venv in [opt.join(".venv/lib"), opt.join("venv/lib"), opt.join("lib")] {
            roots.extend(children(&venv, "python3").iter().map(|p| p.join("site-packages")));
        }
    }
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        roots.extend(
            children(&home.join(".local/lib"), "python3")
                .iter()
                .map(|p| p.join("site-packages")),
        );
    }
    roots
        .iter()
        .flat_map(|r| children(&r.join("nvidia"), ""))
        .map(|p| p.join("lib"))
        .collect()
}

/// Folders of the libraries in the dynamic loader's cache (`ldconfig -p`).
fn ldconfig_dirs() -> Vec<PathBuf> {
    let out = ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .iter()
        .find_map(|c| std::process::Command::new(c).arg("-p").output().ok());
    let Some(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| WANTED.iter().any(|w| l.contains(&format!("lib{w}.so"))))
        .filter_map(|l| l.rsplit_once("=> ").map(|(_, p)| PathBuf::from(p.trim())))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect()
}

/// The major version of a file named `lib{base}.so.{MAJOR}[.…]`.
pub fn versioned_major(file_name: &str, base: &str) -> Option<u32> {
    let rest = file_name.strip_prefix(&format!("lib{base}.so."))?;
    rest.split('.').next()?.parse().ok()
}

/// Versioned files of `lib{base}` in `dirs`, newest major version first (the first folder's
/// among equals).
pub fn versioned_files(base: &str, dirs: &[PathBuf]) -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, usize, PathBuf)> = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        for p in children(d, &format!("lib{base}.so.")) {
            if let Some(major) = p.file_name().and_then(|n| versioned_major(&n.to_string_lossy(), base)) {
                found.push((major, i, p));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found.into_iter().map(|(m, _, p)| (m, p)).collect()
}

fn cudarc_finds(base: &str) -> bool {
    // SAFETY: these only try to open the library by cudarc's names; nothing in it is called.
    unsafe {
        match base {
            "cublas" => cudarc::cublas::sys::is_culib_present(),
            "nvrtc" => cudarc::nvrtc::sys::is_culib_present(),
            _ => false,
        }
    }
}

fn opens(path: &Path) -> bool {
    // SAFETY: opening a CUDA library runs its initialisers, which have no effect beyond it.
    unsafe { libloading::Library::new(path) }.is_ok()
}

/// Links `lib{base}.so` → `target` for every library cudarc cannot find by its own names but a
/// versioned file of which opens; returns the links' folder and the targets' folders, or `None`
/// when nothing is missing or nothing better was found.
fn shim(dir: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let missing: Vec<&str> = WANTED.iter().copied().filter(|b| !cudarc_finds(b)).collect();
    if missing.is_empty() {
        return None;
    }
    let dirs = search_dirs();
    let mut links = Vec::new();
    for base in missing {
        // The newest that opens here; else the newest (it may open once its siblings, e.g.
        // libcublasLt, are on the library path too).
        let found = versioned_files(base, &dirs);
        let pick = found.iter().find(|(_, p)| opens(p)).or(found.first());
        if let Some((_, target)) = pick {
            links.push((format!("lib{base}.so"), target.clone()));
        }
    }
    if links.is_empty() {
        return None;
    }
    // Only this run's links: an earlier run's could shadow what cudarc finds by itself.
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).ok()?;
    let mut target_dirs = Vec::new();
    for (name, target) in &links {
        // Replaced atomically: a link under a temporary name, renamed over the old one.
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).ok()?;
        std::fs::rename(&tmp, dir.join(name)).ok()?;
        target_dirs.extend(target.parent().map(Path::to_path_buf));
    }
    Some((dir.to_path_buf(), target_dirs))
}

/// Makes cuBLAS and NVRTC loadable by cudarc where only versioned files exist (see the module's
/// doc): starts this command again with the links' folder first on the library path and does
/// not return then. Returns when nothing is needed, when nothing was found (the harness then
/// reports what is missing), or when this is already the started-again command. Call it before
/// any thread is started.
pub fn ensure_loadable() {
    if std::env::var_os(SHIM_ENV).is_some() || !crate::driver::driver_present() {
        return;
    }
    // SAFETY: getuid(2) has no failure mode.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("gpushare-cuda-libs-{uid}"));
    let Some((dir, target_dirs)) = shim(&dir) else { return };
    let mut path: Vec<PathBuf> = vec![dir.clone()];
    path.extend(target_dirs);
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        path.extend(std::env::split_paths(&old));
    }
    let joined: OsString = std::env::join_paths(path).unwrap_or_default();
    let Ok(exe) = std::env::current_exe() else { return };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("LD_LIBRARY_PATH", joined)
        .env(SHIM_ENV, &dir)
        .exec();
    eprintln!(
        "warning: could not start again with the versioned CUDA libraries of {} ({err})",
        dir.display()
    );
}

/// The file a library whose name contains `needle` was mapped from, in this process.
fn mapped(needle: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(needle))
        })
        .map(str::to_string)
}

/// Loads what can be loaded of the driver, cuBLAS and NVRTC (as the harness would) and says
/// from which files.
pub fn report() -> LibrariesReport {
    let driver_ok = crate::driver::driver_present();
    // SAFETY: opening by cudarc's names and keeping the handle for the process's life, as the
    // harness's first call would.
    unsafe {
        if driver_ok {
            let _ = cudarc::driver::sys::culib();
        }
        if crate::driver::cublas_present() {
            let _ = cudarc::cublas::sys::culib();
        }
        if crate::driver::nvrtc_present() {
            let _ = cudarc::nvrtc::sys::culib();
        }
    }
    LibrariesReport {
        driver: driver_ok.then(|| mapped("libcuda.so").unwrap_or_else(|| "libcuda.so (path not read)".into())),
        cublas: mapped("libcublas.so"),
        nvrtc: mapped("libnvrtc.so"),
        shim: std::env::var_os(SHIM_ENV).map(|d| PathBuf::from(d).display().to_string()),
    }
}

/// Where a missing library was looked for, for error messages.
pub fn searched() -> String {
    let dirs: Vec<String> = search_dirs().iter().map(|d| d.display().to_string()).collect();
    format!(
        "looked for lib{{cublas,nvrtc}}.so[.N] in {} (add folders with {DIRS_ENV}=DIR:DIR)",
        if dirs.is_empty() {
            "no existing folder".to_string()
        } else {
            dirs.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_names_give_their_major_version() {
        assert_eq!(versioned_major("libcublas.so.13", "cublas"), Some(13));
        assert_eq!(versioned_major("libcublas.so.12.4.5.8", "cublas"), Some(12));
        assert_eq!(versioned_major("libcublasLt.so.13", "cublas"), None);
        assert_eq!(versioned_major("libcublas.so", "cublas"), None);
        assert_eq!(versioned_major("libnvrtc.so.13.0.88", "nvrtc"), Some(13));
        assert_eq!(versioned_major("libnvrtc-builtins.so.13.0", "nvrtc"), None);
    }

    #[test]
    fn the_newest_versioned_file_comes_first_and_lt_is_not_cublas() {
        let root = std::env::temp_dir().join(format!("gpushare-libs-test-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        for (d, f) in [
            (&a, "libcublas.so.12"),
            (&a, "libcublasLt.so.14"),
            (&b, "libcublas.so.13"),
            (&b, "libcublas.so.13.1.0.3"),
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        let found = versioned_files("cublas", &[a.clone(), b.clone()]);
        let names: Vec<(u32, String)> = found
            .iter()
            .map(|(m, p)| (*m, p.file_name().unwrap().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            vec![
                (13, "libcublas.so.13".to_string()),
                (13, "libcublas.so.13.1.0.3".to_string()),
                (12, "libcublas.so.12".to_string())
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
