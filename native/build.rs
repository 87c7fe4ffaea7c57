// Embeds the SHA-256 of the core's own sources, so that a test can tell a
// stale build (sources changed since it was installed) from a current one.
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;

fn main() {
    let mut files: Vec<String> = vec!["Cargo.toml".into(), "build.rs".into()];
    let mut src: Vec<String> = fs::read_dir("src")
        .expect("src/")
        .map(|e| format!("src/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".rs"))
        .collect();
    src.sort();
    files.extend(src);
    let mut h = Sha256::new();
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
        let body = fs::read(Path::new(f)).expect("source file");
        h.update(f.as_bytes());
        h.update(b"\0");
        h.update((body.len() as u64).to_le_bytes());
        h.update(&body);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=BRIDGELEDGER_CORE_SOURCE_SHA256={hex}");
}
