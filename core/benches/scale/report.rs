//! The benchmark's tables: medians per point and tool, growth exponents
//! per sweep, the ratios against the peer, and the reference figure for
//! memory (`dd` writing the same amount into tmpfs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::Tool;

/// One run's figures (seconds, KiB).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub dump: f64,
    pub frozen: f64,
    pub restore: f64,
    pub dump_rss: u64,
    pub restore_rss: u64,
}

/// A point of a sweep: its size and the runs of each tool.
pub struct Point {
    pub n: usize,
    pub samples: Vec<Vec<Sample>>,
}

impl Point {
    /// The median sample of tool `t` (each figure its own median).
    pub fn median(&self, t: usize) -> Sample {
        let s = &self.samples[t];
        let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
        Sample {
            dump: m(|s| s.dump),
            frozen: m(|s| s.frozen),
            restore: m(|s| s.restore),
            dump_rss: m(|s| s.dump_rss as f64) as u64,
            restore_rss: m(|s| s.restore_rss as f64) as u64,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Growth exponent b of y ≈ a·xᵇ: least squares over (ln x, ln y).
pub fn fit(points: &[(f64, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// (fit over all points, exponent of the last step) of one figure.
fn exponents(rows: &[Point], t: usize, f: fn(&Sample) -> f64) -> (Option<f64>, Option<f64>) {
    let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.n as f64, f(&r.median(t)))).collect();
    let last = (pts.len() >= 2)
        .then(|| fit(&pts[pts.len() - 2..]))
        .flatten();
    (fit(&pts), last)
}

fn exp(e: Option<f64>) -> String {
    e.map_or("-".into(), |e| format!("{e:.2}"))
}

pub fn sweep_table(name: &str, tools: &[Tool], rows: &[Point]) {
    println!("\n{name:>8} | tool | dump s | frozen s | restore s | dump RSS MiB | restore RSS MiB");
    let mib = |k: u64| k as f64 / 1024.0;
    for r in rows {
        for (t, tool) in tools.iter().enumerate() {
            if r.samples[t].is_empty() {
                println!("{:>8} | {:<4} | FAILED (see above)", r.n, tool.name);
                continue;
            }
            let m = r.median(t);
            println!(
                "{:>8} | {:<4} | {:>6.3} | {:>8.3} | {:>9.3} | {:>12.1} | {:>15.1}",
                r.n,
                tool.name,
                m.dump,
                m.frozen,
                m.restore,
                mib(m.dump_rss),
                mib(m.restore_rss)
            );
        }
        if tools.len() > 1 && r.samples.iter().all(|s| !s.is_empty()) {
            let (a, b) = (r.median(0), r.median(1));
            println!(
                "{:>8} | ours/criu: dump {:.2}, frozen {:.2}, restore {:.2}",
                r.n,
                a.dump / b.dump,
                a.frozen / b.frozen,
                a.restore / b.restore
            );
        }
    }
    for (t, tool) in tools.iter().enumerate() {
        let (d, dl) = exponents(rows, t, |s| s.dump);
        let (f, fl) = exponents(rows, t, |s| s.frozen);
        let (r, rl) = exponents(rows, t, |s| s.restore);
        println!(
            "{name:>8} | {:<4} growth exponent (fit / last step): dump {} / {}, frozen {} / {}, restore {} / {}",
            tool.name,
            exp(d),
            exp(dl),
            exp(f),
            exp(fl),
            exp(r),
            exp(rl)
        );
    }
}

/// The end of the run: every sweep's exponents in one table, and the
/// issue's target points against the peer.
pub fn summary(tools: &[Tool], all: &[(String, Vec<Point>)]) {
    println!("\n== summary: growth exponent of the last step (fit over the sweep)");
    println!("sweep    | tool | dump        | restore");
    for (name, rows) in all {
        for (t, tool) in tools.iter().enumerate() {
            let (d, dl) = exponents(rows, t, |s| s.dump);
            let (r, rl) = exponents(rows, t, |s| s.restore);
            println!(
                "{name:<8} | {:<4} | {:>4} ({:>4}) | {:>4} ({:>4})",
                tool.name,
                exp(dl),
                exp(d),
                exp(rl),
                exp(r)
            );
        }
    }
    if tools.len() < 2 {
        return;
    }
    println!(
        "\n== targets (ours/criu; the aim: dump <= 0.5, restore <= 0.5, 1 GiB restore <= 0.33)"
    );
    for (sweep, n) in [("procs", 100), ("fds", 2000), ("mem", 1024)] {
        let Some(p) = all
            .iter()
            .filter(|(s, _)| s == sweep)
            .flat_map(|(_, rows)| rows.iter())
            .find(|r| r.n == n)
        else {
            continue;
        };
        if p.samples.iter().any(Vec::is_empty) {
            println!("{sweep}={n}: a run failed");
            continue;
        }
        let (a, b) = (p.median(0), p.median(1));
        println!(
            "{sweep}={n}: dump {:.3} / {:.3} s = {:.2}, restore {:.3} / {:.3} s = {:.2}",
            a.dump,
            b.dump,
            a.dump / b.dump,
            a.restore,
            b.restore,
            a.restore / b.restore
        );
    }
}

/// `dd` writing each size into tmpfs, median of `repeat` runs: what a dump
/// of that much memory cannot beat on one core.
pub fn dd_reference(root: &Path, sizes: &[usize], repeat: usize) {
    for &mib in sizes {
        let out = root.join("dd.out");
        let mut times = Vec::new();
        for _ in 0..repeat {
            let t = Instant::now();
            let ok = Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", out.display()))
                .args(["bs=1M", &format!("count={mib}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let el = t.elapsed().as_secs_f64();
            let _ = std::fs::remove_file(&out);
            if !ok {
                println!("   dd {mib} MiB into tmpfs failed (not enough memory?)");
                break;
            }
            times.push(el);
        }
        if !times.is_empty() {
            println!(
                "   reference: dd of {mib} MiB into tmpfs: {:.3} s (median of {})",
                median(times.clone()),
                times.len()
            );
        }
    }
}
