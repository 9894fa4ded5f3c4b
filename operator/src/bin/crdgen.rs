//! `crdgen`: writes the generated CustomResourceDefinitions into `crds/` and
//! `charts/rill/crds/` (the two copies must stay identical; a unit test
//! fails when either is out of date). Run it with
//! `cargo run -p rill-operator --bin crdgen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn write_all(dir: &Path, files: &[rill_operator::crd::CrdFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for file in files {
        std::fs::write(dir.join(&file.file_name), &file.yaml)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let files = match rill_operator::crd::generate_crds_yaml() {
        Ok(files) => files,
        Err(error) => {
            eprintln!("crdgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|a| a == "--stdout") {
        for file in &files {
            print!("{}", file.yaml);
        }
        return ExitCode::SUCCESS;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [root.join("crds"), root.join("charts/rill/crds")] {
        if let Err(error) = write_all(&dir, &files) {
            eprintln!("crdgen: cannot write {}: {error}", dir.display());
            return ExitCode::FAILURE;
        }
        for file in &files {
            println!("wrote {}", dir.join(&file.file_name).display());
        }
    }
    ExitCode::SUCCESS
}
