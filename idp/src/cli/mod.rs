//! The admin commands of the `idp` binary that change the realm: users,
//! clients, scopes and resources (binary-only modules; the library is not
//! aware of them). The work is done by the library ([`idp::admin`],
//! [`idp::catalog`], [`idp::realm`]); these modules parse and print, as text
//! or, with `--json`, as one JSON document.

pub mod catalog;
pub mod clients;
pub mod users;

use serde::Serialize;

/// Prints `value` as JSON with `--json`, else the text `text` builds.
pub fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(doc) => println!("{doc}"),
            Err(e) => eprintln!("cannot write JSON: {e}"),
        }
    } else {
        println!("{}", text());
    }
}
