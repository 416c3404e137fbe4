//! The results table (stdout and `bench/results.md`) and the machine description.

use std::fmt::Write as _;
use std::time::Duration;

/// One figure with its in-run baseline.
#[derive(Debug, Clone)]
pub struct Row {
    pub section: &'static str,
    pub figure: String,
    pub value: String,
    pub baseline: String,
    /// figure / baseline, when both are rates or sizes.
    pub ratio: Option<f64>,
    pub target: String,
    /// Whether the target was met (`None`: no target, or not measurable).
    pub met: Option<bool>,
}

impl Row {
    pub fn new(section: &'static str, figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            section,
            figure: figure.into(),
            value: value.into(),
            baseline: String::new(),
            ratio: None,
            target: String::new(),
            met: None,
        }
    }

    pub fn baseline(mut self, baseline: impl Into<String>) -> Row {
        self.baseline = baseline.into();
        self
    }

    pub fn ratio(mut self, ratio: f64) -> Row {
        self.ratio = ratio.is_finite().then_some(ratio);
        self
    }

    /// A target with its verdict.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }
}

/// `1234/s`.
pub fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

/// `0.84 ms`.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// `512 µs` (whole microseconds; CPU time is counted in 10 ms ticks, so a
/// per-request figure is only as fine as the loop is long).
pub fn us(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

/// Signed difference in ms.
pub fn ms_delta(a: Duration, b: Duration) -> String {
    let v = (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
    format!("{v:+.2} ms")
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// The table in Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| # | figure | measured | in-run baseline | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ratio = r
            .ratio
            .map_or(String::new(), |x| format!("{:.0} %", x * 100.0));
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.section, r.figure, r.value, r.baseline, ratio, r.target, met
        );
    }
    out
}

/// What the numbers were measured on.
pub fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1048576.0)
        });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let command = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    format!(
        "- CPUs (nproc): {cpus}\n- CPU: {cpu}\n- memory: {mem}\n- kernel: {}\n- rustc: {}\n- node: {}\n",
        read("/proc/sys/kernel/osrelease").trim(),
        command("rustc", "--version"),
        command("node", "--version"),
    )
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_ratios_as_percentages_and_flags_missed_targets() {
        let rows = [
            Row::new("1", "grants", rate(2500.0))
                .baseline(rate(3000.0))
                .ratio(2500.0 / 3000.0)
                .target(">= 70 %", true),
            Row::new("5", "idle RSS", mib(12_500_000)).target("<= 30 MB", false),
        ];
        let t = table(&rows);
        assert!(
            t.contains("| 1 | grants | 2500/s | 3000/s | 83 % | >= 70 % | yes |"),
            "{t}"
        );
        assert!(
            t.contains("| 5 | idle RSS | 12.5 MB |  |  | <= 30 MB | **no** |"),
            "{t}"
        );
    }
}
