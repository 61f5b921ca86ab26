//! Compiles the gRPC definitions in `proto/` with protox (a protobuf compiler in Rust), so no
//! system `protoc` is needed, and with feature `edge-link`, links `chronosd` small (see
//! [`link_edge_node_small`]).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/chronos.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    link_edge_node_small()?;
    Ok(())
}

/// With feature `edge-link` on Linux with glibc (x86-64 or AArch64, where unwind tables are
/// `.eh_frame`), links `chronosd` without unwind tables and with packed relative relocations:
/// 5.0 MB of edge binary become 4.1 MB.
///
/// - Unwind tables are read to unwind a panic, and by debuggers and profilers to walk a stack
///   (gdb, `perf --call-graph dwarf`, core dump tools). `chronosd` refuses to compile with the
///   feature where panics unwind; the edge profile's panics abort, and `RUST_BACKTRACE` then
///   prints no frames.
/// - Packed relative relocations (`-z pack-relative-relocs`) keep the binary position
///   independent (address-space randomisation) in a few KB instead of 240 KB. The loader must
///   know them: glibc 2.36 or later. An older one refuses to start a binary LLD linked so,
///   naming the missing version `GLIBC_ABI_DT_RELR`.
fn link_edge_node_small() -> std::io::Result<()> {
    let is = |key: &str, values: &[&str]| {
        std::env::var(key).is_ok_and(|value| values.contains(&value.as_str()))
    };
    if std::env::var_os("CARGO_FEATURE_EDGE_LINK").is_none() {
        return Ok(());
    }
    if !is("CARGO_CFG_TARGET_OS", &["linux"])
        || !is("CARGO_CFG_TARGET_ENV", &["gnu"])
        || !is("CARGO_CFG_TARGET_ARCH", &["x86_64", "aarch64"])
    {
        println!("cargo:warning=feature edge-link does nothing for this target");
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
    // `-T` to the compiler driver, not `-Wl,-T,`: a comma in the path would split that.
    println!("cargo:rustc-link-arg-bin=chronosd=-T{}", script.display());
    println!("cargo:rustc-link-arg-bin=chronosd=-Wl,-z,pack-relative-relocs");
    Ok(())
}
