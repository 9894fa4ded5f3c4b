//! Compiles `proto/*.proto` with protox (a pure-Rust protobuf compiler), so
//! building Rill never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/client.proto",
        "proto/controller.proto",
        "proto/replication.proto",
        "proto/txn.proto",
        "proto/share.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
