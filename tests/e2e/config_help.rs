//! The README's configuration table and the parts' `--help` name the same
//! variables: every row of the idp, gateway, order, payment, inventory and
//! guard sections is listed (`[env: NAME=]`) by the binaries that read it,
//! and every variable a binary lists is a row of its part's section (or of
//! guard's, for the parts that validate tokens). The "every process",
//! `make up` and `make deploy-test` sections are read by no part's `Config`
//! (logging, telemetry, the launch scripts) and are left out. Rows marked
//! "read by `deploy/routes.toml`" are the route table's `${NAME}`s, not
//! settings of the gateway's: they must stand in that file instead.

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

/// How the README marks the rows of the route table's variables.
const ROUTE_TABLE_ROW: &str = "read by `deploy/routes.toml`";

fn workspace_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The variables of each section of the README's configuration table, by
/// section name (the route table's rows under the name `routes`).
fn readme_table() -> Vec<(String, BTreeSet<String>)> {
    let readme = workspace_file("README.md");
    let table = &readme[readme
        .find("## Configuration")
        .expect("a Configuration section")..];
    let mut sections: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut current = None;
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            break; // the end of the table
        };
        let first = first.trim();
        if let Some(section) = first.strip_prefix("**") {
            let name = section[..section.find("**").expect("a bold section name")].to_owned();
            sections.push((name, BTreeSet::new()));
            current = Some(sections.len() - 1);
        } else if let Some(current) = current {
            let section = match line.contains(ROUTE_TABLE_ROW) {
                true => route_rows(&mut sections),
                false => current,
            };
            // `A`, `B`, `C`: one row may name several variables.
            sections[section].1.extend(
                first
                    .split(',')
                    .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`'))
                    .map(str::to_owned),
            );
        }
    }
    sections
}

/// The index of the `routes` section, added when first needed.
fn route_rows(sections: &mut Vec<(String, BTreeSet<String>)>) -> usize {
    match sections.iter().position(|(name, _)| name == "routes") {
        Some(index) => index,
        None => {
            sections.push(("routes".to_owned(), BTreeSet::new()));
            sections.len() - 1
        }
    }
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
            name == "routes"
                || SECTIONS.iter().any(|(s, _)| s == name)
                || OUTSIDE.iter().any(|o| name.starts_with(o)),
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
    let routes = workspace_file("deploy/routes.toml");
    for var in rows("routes") {
        assert!(
            routes.contains(&format!("${{{var}")),
            "deploy/routes.toml never reads {var}"
        );
    }
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
