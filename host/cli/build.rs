//! Link settings for the `talon` binary.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // The binary is position-independent, so the dynamic loader patches
    // every absolute address in it at start. Stored as plain RELA entries
    // those relocations are 2.2 MB that are read at every start and stay
    // resident; packed (DT_RELR, glibc 2.36 and later) they are a few KB.
    // Linkers that do not know the option, or a glibc without DT_RELR,
    // leave the binary as it was.
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
