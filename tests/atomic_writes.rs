//! Every file mentor writes goes through `engine::io::write_atomic` (a synced temporary
//! and a rename), so a kill mid-write never leaves a half-written or empty file where a
//! good one was. This guard reads the library and binary sources (test modules left
//! out) for the calls that write a file in place.

mod common;
use common::rust_files;

use std::path::Path;

/// Calls that create or overwrite a file in place.
const IN_PLACE: [&str; 7] = [
    "fs::write(",
    "File::create(",
    ".save(&",
    "save_buffer(",
    "serialize_to_file(",
    "BitMapBackend::new(",
    "SVGBackend::new(",
];

/// The one file allowed to create files: the atomic writer itself.
const WRITER: &str = "engine/io.rs";

/// `file:line: call` for each in-place write outside test code under `src`.
fn in_place_writes(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == WRITER {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Test modules come last in a file (the project's convention).
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            if let Some(call) = IN_PLACE.iter().find(|c| line.contains(*c)) {
                found.push(format!("src/{rel}:{}: {call}", i + 1));
            }
        }
    }
    found
}

#[test]
fn no_file_is_written_in_place() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = in_place_writes(&src);
    assert!(
        found.is_empty(),
        "write these through engine::io::write_atomic:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_guard_finds_an_in_place_write_but_not_one_in_tests_or_comments() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("cli")).unwrap();
    std::fs::write(
        src.join("cli/out.rs"),
        "fn f() {\n    // std::fs::write(p, b) in a comment\n    std::fs::write(p, b).unwrap();\n}\n#[cfg(test)]\nmod tests { fn g() { std::fs::write(p, b).unwrap(); } }\n",
    )
    .unwrap();
    assert_eq!(in_place_writes(src), ["src/cli/out.rs:3: fs::write("]);
}
