//! Compiles the gRPC definitions in `proto/` with protox (a protobuf compiler in Rust), so no
//! system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["chronos/v1/sql.proto", "chronos/v1/admin.proto", "chronos/v1/raft.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files.iter().map(|f| format!("proto/{f}")), ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
