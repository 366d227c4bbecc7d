//! The disk under the database: noticing that it is full, and a reserve that
//! lets the store recover cleanly when it is.
//!
//! redb latches the first failed write of its file: every later operation
//! on that `Database`, reads included, fails until it is closed and opened
//! again. Opening again reverts to the last durable commit, so the turns
//! acknowledged through the journal since then must be replayed, which is a
//! write. On a disk with no space left that replay would fail too, and the
//! store would lose sight of recent turns while the disk stays full.
//!
//! So the store keeps a reserve file beside the database (`[storage]
//! disk_reserve_mib`), allocated while there is room. When a write of the
//! database file fails for lack of space ([`Watched`] notices), the store
//! deletes the reserve, reopens and replays into the room it leaves, and
//! refuses writes (`StoreError::DiskFull`) without trying them. Once the
//! disk has room for the reserve twice over, the reserve is allocated again
//! and writes resume.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::StorageBackend;
use redb::backends::FileBackend;

/// The error a write of the database file answers when the disk is full:
/// it names the directory, so the message can say which disk to free.
#[derive(Debug, thiserror::Error)]
#[error(
    "no space left on the disk holding the data directory {}: writes are refused until space is freed (reads still work)",
    dir.display()
)]
pub struct NoSpace {
    /// The data directory.
    pub dir: PathBuf,
}

/// Whether an I/O error says the disk (or the user's quota on it) is full.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// What [`Watched`] saw go wrong: set by the failing write, taken by the store.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    seen: Mutex<Option<io::ErrorKind>>,
    flag: std::sync::atomic::AtomicBool,
}

impl Faults {
    /// Cheap check for the hot path.
    pub(crate) fn pending(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Notes a fault (or asks for a reopen): the next use of the store reopens it.
    pub(crate) fn record(&self, kind: io::ErrorKind) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get_or_insert(kind);
        self.flag.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Takes the first fault seen since the last call.
    pub(crate) fn take(&self) -> Option<io::ErrorKind> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.flag.store(false, std::sync::atomic::Ordering::Release);
        seen.take()
    }
}

/// redb's file backend, reporting failed writes to the store and naming the
/// data directory in a disk-full error.
#[derive(Debug)]
pub(crate) struct Watched {
    file: FileBackend,
    dir: PathBuf,
    faults: Arc<Faults>,
}

impl Watched {
    /// Opens (or creates) the database file at `path`.
    pub(crate) fn open(path: &Path, faults: Arc<Faults>) -> Result<Self, redb::DatabaseError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Self {
            file: FileBackend::new(file)?,
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            faults,
        })
    }

    fn watch<T>(&self, result: io::Result<T>) -> io::Result<T> {
        result.map_err(|e| {
            self.faults.record(e.kind());
            if is_no_space(&e) {
                io::Error::new(
                    io::ErrorKind::StorageFull,
                    NoSpace {
                        dir: self.dir.clone(),
                    },
                )
            } else {
                e
            }
        })
    }
}

impl StorageBackend for Watched {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.watch(self.file.set_len(len))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.watch(self.file.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.watch(self.file.write(offset, data))
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// Bytes available to this process on the filesystem holding `dir`.
pub(crate) fn available_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and stat a writable
    // statvfs; the struct is read only after the call reports success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    // fsblkcnt_t and c_ulong are 32 bits on some targets.
    #[allow(clippy::unnecessary_cast)]
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// The reserve file beside the database.
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
    bytes: u64,
}

impl Reserve {
    pub(crate) fn new(db_path: &Path, bytes: u64) -> Self {
        Self {
            path: db_path.with_extension("reserve"),
            bytes,
        }
    }

    /// Whether the reserve file is there at its full size.
    pub(crate) fn present(&self) -> bool {
        self.bytes == 0 || std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes)
    }

    /// Allocates the reserve (blocks really allocated, not a sparse file).
    pub(crate) fn allocate(&self) -> io::Result<()> {
        if self.present() {
            return Ok(());
        }
        let file = File::create(&self.path)?;
        let len = libc::off_t::try_from(self.bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the descriptor is open for writing for the whole call.
        let rc =
            unsafe { libc::posix_fallocate(std::os::unix::io::AsRawFd::as_raw_fd(&file), 0, len) };
        if rc != 0 {
            drop(file);
            let _ = std::fs::remove_file(&self.path);
            return Err(io::Error::from_raw_os_error(rc));
        }
        file.sync_all()
    }

    /// Gives the reserve's space back to the disk.
    pub(crate) fn release(&self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, reserve = %self.path.display(), "could not remove the disk reserve");
        }
    }

    /// Whether the disk has room to allocate the reserve and keep as much free.
    pub(crate) fn room_to_resume(&self) -> bool {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        available_bytes(dir).is_ok_and(|free| free >= self.bytes.saturating_mul(2).max(1 << 20))
    }
}
