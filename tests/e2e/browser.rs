//! The real-browser test: `tests/browser/` (Playwright driving Debian's
//! Chromium) against a stack started by this harness. It runs here so that
//! it gets a fresh stack on free ports like every other end-to-end test.

use std::path::Path;
use std::process::Command;

use crate::harness::Stack;

#[tokio::test]
async fn a_person_signs_in_orders_and_signs_out_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium =
        std::env::var("BATON_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} not found: install Debian's Chromium (apt-get install chromium) or set BATON_CHROMIUM"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (make test does)"
    );

    let stack = Stack::start().await;
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--test")
            .arg("--test-reporter=spec")
            .arg(dir.join("signin.test.mjs"))
            .env(
                "BATON_GATEWAY_URL",
                stack.gateway.as_str().trim_end_matches('/'),
            )
            .env("BATON_IDP_URL", stack.idp.as_str().trim_end_matches('/'))
            .env("BATON_CHROMIUM", &chromium)
            .output()
            .map(|out| (out, stack))
    })
    .await
    .expect("join")
    .expect("run node (install Node.js 20+)");
    let (output, _stack) = output;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the browser test failed:\n{report}"
    );
    println!("{report}");
}
