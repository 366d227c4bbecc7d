//! Package files named by the operator, and which versions may replace
//! which.

use crate::KernelError;

/// The largest package file read from a path: a manifest, a component and
/// a signature at their limits.
const MAX_PACKAGE_BYTES: u64 = (talon_runtime::package::MAX_MANIFEST_BYTES
    + talon_runtime::package::MAX_COMPONENT_BYTES
    + 64 * 1024) as u64;

/// Reads a package file named by the operator: a regular file only (a FIFO
/// or a device would block or never end), its size checked before reading
/// and the read itself capped, in case the file grows meanwhile.
pub(super) fn read_package_file(path: &std::path::Path) -> Result<Vec<u8>, KernelError> {
    use std::io::Read;
    let cannot =
        |e: std::io::Error| KernelError::Invalid(format!("cannot read {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO for reading waits for a writer; non-blocking, the
        // open returns at once and the type check below refuses it.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(KernelError::Invalid(format!(
            "{} is not a regular file; give the path of a .talon package",
            path.display()
        )));
    }
    if meta.len() > MAX_PACKAGE_BYTES {
        return Err(KernelError::Invalid(format!(
            "{} is {} bytes; a package is at most {MAX_PACKAGE_BYTES}",
            path.display(),
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_PACKAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_PACKAGE_BYTES {
        return Err(KernelError::Invalid(format!(
            "{} grew past {MAX_PACKAGE_BYTES} bytes while it was read",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Refuses to replace version `installed` of `name` with a lower `offered`.
pub(super) fn refuse_downgrade(
    name: &str,
    installed: &str,
    offered: &str,
) -> Result<(), KernelError> {
    let (Ok(installed), Ok(offered)) = (
        semver::Version::parse(installed),
        semver::Version::parse(offered),
    ) else {
        // Manifests are checked to be MAJOR.MINOR.PATCH at install; an
        // unreadable stored version cannot be ordered, so it does not block.
        return Ok(());
    };
    if offered < installed {
        return Err(KernelError::Conflict(format!(
            "plugin {name} {installed} is installed and the package is the older {offered}; \
             reload with force to downgrade"
        )));
    }
    Ok(())
}
