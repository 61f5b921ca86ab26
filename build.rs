//! Compiles the gRPC definitions in `proto/` with protox (a protobuf compiler in Rust), so no
//! system `protoc` is needed, and links the edge build's `chronosd` small (see
//! [`link_edge_node_small`]).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/chronos.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    link_edge_node_small()?;
    Ok(())
}

/// With feature `edge` on Linux with glibc, links `chronosd` without unwind tables and with
/// packed relative relocations: together about 0.9 MB of the 5.0 MB edge binary.
///
/// - Unwind tables (`.eh_frame`) are only read to unwind a panic or print a backtrace. The
///   edge profile's panics abort, so nothing unwinds; without the tables a panic in any
///   profile aborts the node, and `RUST_BACKTRACE` shows no frames.
/// - Packed relative relocations (`-z pack-relative-relocs`) keep the binary position
///   independent (address-space randomisation) in a few KB instead of 240 KB. The loader must
///   know them: glibc 2.36 or later. An older one refuses to start the binary, naming the
///   missing version `GLIBC_ABI_DT_RELR`.
fn link_edge_node_small() -> std::io::Result<()> {
    let is = |key: &str, value: &str| std::env::var(key).is_ok_and(|v| v == value);
    if std::env::var_os("CARGO_FEATURE_EDGE").is_none()
        || !is("CARGO_CFG_TARGET_OS", "linux")
        || !is("CARGO_CFG_TARGET_ENV", "gnu")
    {
        return Ok(());
    }
    let out_dir = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| std::io::Error::other("cargo sets OUT_DIR for build scripts"))?;
    let script = out_dir.join("discard-unwind-tables.ld");
    // INSERT keeps the linker's default layout; the script only adds the discard.
    std::fs::write(
        &script,
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) } }\nINSERT AFTER .text;\n",
    )?;
    println!("cargo:rustc-link-arg-bin=chronosd=-Wl,-T,{}", script.display());
    println!("cargo:rustc-link-arg-bin=chronosd=-Wl,-z,pack-relative-relocs");
    Ok(())
}
