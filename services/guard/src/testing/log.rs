//! The `TEST_LOG` switch: with `TEST_LOG=1` (or any value but `0`) the logs of
//! the app under test go to the test's output through the test writer (so
//! the test runner shows them with the test that wrote them); without it the
//! tests are quiet. `RUST_LOG` picks the levels (default `info`).

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Whether `TEST_LOG` asks for the logs of the apps under test.
pub fn enabled() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Installs the test-writer subscriber once per test binary when
/// [`enabled`]; does nothing otherwise. Every kit entry point calls it.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if enabled() {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
            // Another subscriber set by the test itself wins.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}
