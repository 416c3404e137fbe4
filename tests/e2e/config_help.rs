//! The README's configuration table and the parts' `--help` name the same
//! variables: every row of the idp, gateway, order, payment, inventory and
//! guard sections is listed (`[env: NAME=]`) by the binaries that read it,
//! and every variable a binary lists is a row of its part's section (or of
//! guard's, for the parts that validate tokens). The "every process",
//! `make up` and `make deploy-test` sections are read by no part's `Config`
//! (logging, telemetry, the launch scripts) and are left out.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::stack::binary;

/// (README section, the binaries whose `--help` must list its rows).
const SECTIONS: &[(&str, &[&str])] = &[
    ("idp", &["idp"]),
    ("gateway", &["gateway"]),
    ("order", &["order"]),
    ("payment", &["payment"]),
    ("inventory", &["inventory"]),
    ("guard", &["gateway", "order", "payment", "inventory"]),
];

/// Sections of the table that no part's `--help` lists.
const OUTSIDE: &[&str] = &["every process", "`make up`", "`make deploy-test`"];

/// The variables of each section of the README's configuration table, by section name.
fn readme_table() -> Vec<(String, BTreeSet<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let table = &readme[readme
        .find("## Configuration")
        .expect("a Configuration section")..];
    let mut sections: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            break; // the end of the table
        };
        let first = first.trim();
        if let Some(section) = first.strip_prefix("**") {
            let name = section[..section.find("**").expect("a bold section name")].to_owned();
            sections.push((name, BTreeSet::new()));
        } else if let Some((_, vars)) = sections.last_mut() {
            // `A`, `B`, `C`: one row may name several variables.
            vars.extend(
                first
                    .split(',')
                    .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`'))
                    .map(str::to_owned),
            );
        }
    }
    sections
}

/// The `[env: NAME=…]` variables of a binary's `--help`.
fn help_variables(bin: &str) -> BTreeSet<String> {
    let output = std::process::Command::new(binary(bin))
        .arg("--help")
        .env_clear()
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{bin} --help failed");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    help.split("[env: ")
        .skip(1)
        .map(|rest| rest[..rest.find('=').expect("[env: NAME=]")].to_owned())
        .collect()
}

#[test]
fn the_readme_table_and_the_parts_help_name_the_same_variables() {
    let table = readme_table();
    let names: Vec<&str> = table.iter().map(|(name, _)| name.as_str()).collect();
    for (section, _) in SECTIONS {
        assert!(
            names.contains(section),
            "the README table has no {section} section"
        );
    }
    for (name, _) in &table {
        assert!(
            SECTIONS.iter().any(|(s, _)| s == name) || OUTSIDE.iter().any(|o| name.starts_with(o)),
            "README section {name:?} is neither a part's nor one of {OUTSIDE:?}"
        );
    }
    let rows = |section: &str| -> BTreeSet<String> {
        table
            .iter()
            .find(|(n, _)| n == section)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for bin in ["idp", "gateway", "order", "payment", "inventory"] {
        let help = help_variables(bin);
        let mut documented = BTreeSet::new();
        for (section, bins) in SECTIONS {
            if bins.contains(&bin) {
                let rows = rows(section);
                let missing: Vec<_> = rows.difference(&help).collect();
                assert!(
                    missing.is_empty(),
                    "`{bin} --help` does not list {missing:?} (README: {section})"
                );
                documented.extend(rows);
            }
        }
        let undocumented: Vec<_> = help.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "`{bin} --help` lists {undocumented:?}, which the README's table does not"
        );
    }
}
