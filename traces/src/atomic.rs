//! Atomic file writes: write `NAME.tmp`, then rename to `NAME`, so that no output is ever half
//! written under its final name. A temporary is removed when its writer is dropped uncommitted
//! (an error on the way) and, through [`remove_temporaries`], when the command is interrupted:
//! every live temporary is registered while it exists.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The temporaries being written now.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

fn forget(tmp: &Path) {
    let mut l = live();
    if let Some(i) = l.iter().position(|p| p == tmp) {
        l.swap_remove(i);
    }
}

/// Removes every temporary still being written (for a signal handler about to exit); returns
/// how many it removed.
pub fn remove_temporaries() -> usize {
    let l = live();
    l.iter().filter(|p| std::fs::remove_file(p).is_ok()).count()
}

/// A file being written under a temporary name.
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
}

fn tmp_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    dest.with_file_name(name)
}

impl AtomicFile {
    /// Starts writing `dest` (through `dest.tmp`).
    pub fn create(dest: &Path) -> io::Result<Self> {
        let tmp = tmp_name(dest);
        live().push(tmp.clone());
        // Errors carry no path: every caller names the destination itself.
        let file = File::create(&tmp).inspect_err(|_| forget(&tmp))?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_owned(),
            out: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("not yet committed")
    }

    /// Appends `bytes`; an error names the file (`dest: …`), for writers that stream rows.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let dest = &self.dest;
        let out = self.out.as_mut().expect("not yet committed");
        out.write_all(bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dest.display())))
    }

    /// Flushes and renames into place.
    pub fn commit(mut self) -> io::Result<()> {
        let out = self.out.as_mut().expect("committed once");
        out.flush()?;
        out.get_ref().sync_all()?;
        self.out = None;
        let renamed = std::fs::rename(&self.tmp, &self.dest);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        forget(&self.tmp);
        renamed
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            // Never committed: leave no half-written file behind.
            let _ = std::fs::remove_file(&self.tmp);
            forget(&self.tmp);
        }
    }
}

/// An [`AtomicFile`] that a record sink streams rows into, with its header first, until the
/// sink is finished: appending after that is an error that names the file as `name`, and
/// finishing again does nothing.
pub struct StreamedFile {
    file: Option<AtomicFile>,
    name: &'static str,
}

impl StreamedFile {
    /// Starts `dest` with `header`.
    pub fn create(dest: &Path, header: &str, name: &'static str) -> io::Result<Self> {
        let mut file = AtomicFile::create(dest)?;
        file.writer().write_all(header.as_bytes())?;
        Ok(StreamedFile { file: Some(file), name })
    }

    /// Appends `bytes` (whole rows).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let name = self.name;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other(format!("{name} is finished")))?;
        file.append(bytes)
    }

    /// Commits the file, the first time.
    pub fn finish(&mut self) -> io::Result<()> {
        self.file.take().map_or(Ok(()), AtomicFile::commit)
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.writer().write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let dir = crate::tempdir::TempDir::new("atomic").unwrap();
        let dest = dir.path().join("x.csv");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.writer().write_all(b"partial").unwrap();
        }
        assert!(!dest.exists() && !tmp_name(&dest).exists());
        // An interrupted command removes what it was writing.
        let f = AtomicFile::create(&dest).unwrap();
        assert!(tmp_name(&dest).exists());
        assert!(remove_temporaries() >= 1);
        assert!(!tmp_name(&dest).exists());
        drop(f);
        write_atomic(&dest, b"whole").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
    }
}
