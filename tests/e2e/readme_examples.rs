//! The code a reader copies from the README is code that builds: each Rust
//! block the README shows as a file is that file, byte for byte, and the file
//! is an example target that `make test` compiles (clippy `--all-targets`).

use std::path::Path;

/// (README heading the block follows, the file it shows).
const SHOWN: &[(&str, &str)] = &[(
    "## Protect your own service with guard",
    "services/guard/examples/protect_your_service.rs",
)];

#[test]
fn every_example_in_the_readme_is_a_compiled_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for (heading, file) in SHOWN {
        let section = &readme[readme
            .find(heading)
            .unwrap_or_else(|| panic!("README has no {heading:?}"))..];
        let start = section.find("```rust\n").expect("a rust block") + "```rust\n".len();
        let block = &section[start..start + section[start..].find("```\n").expect("its end")];
        let code = std::fs::read_to_string(root.join(file)).expect("the example file");
        assert_eq!(
            block, code,
            "the README's block under {heading:?} is not {file}"
        );
        assert!(
            section[..start].contains(file),
            "the README names {file} above the block"
        );
    }
}
