//! The runs kept under `target/runs/` (every `cargo xtask test` leaves its
//! JSON there), each summed up as kernel iterations per second and window
//! coverage, oldest first.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::model::Run;

/// How many runs are kept; older ones are removed.
pub const KEPT: usize = 30;

#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub run: String,
    pub iterations_per_s: f64,
    /// Instructions of the entry windows hit at least once, of all listed.
    pub coverage: Option<f64>,
}

pub fn runs_dir() -> PathBuf {
    crate::target_dir().join("runs")
}

/// Sums a run up.
pub fn point(name: &str, run: &Run) -> Point {
    let kernel: Vec<_> = run
        .cells
        .iter()
        .filter(|c| c.iterations.is_some())
        .collect();
    let iterations: u64 = kernel.iter().filter_map(|c| c.iterations).sum();
    let seconds: f64 = kernel.iter().map(|c| c.seconds).sum();
    let (hit, all) = if run.windows.is_empty() {
        // Before window events: `window_coverage=A/B` in the result's words.
        run.cells
            .iter()
            .filter_map(|c| {
                let rest = c.message.split("window_coverage=").nth(1)?;
                let (a, b) = rest.split_whitespace().next()?.split_once('/')?;
                Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
            })
            .fold((0, 0), |(x, y), (a, b)| (x + a, y + b))
    } else {
        run.windows.iter().fold((0, 0), |(x, y), w| {
            let hit = w.rows.values().filter(|r| r.hits > 0).count() as u64;
            (x + hit, y + w.rows.len() as u64)
        })
    };
    Point {
        run: name.to_string(),
        iterations_per_s: if seconds > 0.0 {
            iterations as f64 / seconds
        } else {
            0.0
        },
        coverage: (all > 0).then(|| hit as f64 / all as f64),
    }
}

/// Every kept run of the whole catalog, oldest first; an unreadable one is
/// left out.
pub fn points(dir: &Path) -> Vec<Point> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.retain(|p| !p.to_string_lossy().ends_with("-partial.jsonl"));
    files.sort();
    files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let run = Run::parse(&text).ok()?;
            let name = path.file_stem()?.to_string_lossy().into_owned();
            Some(point(&name, &run))
        })
        .collect()
}

/// Where `cargo xtask test` keeps this run's JSON: `target/runs/run-SECS.jsonl`
/// (`run-SECS-partial.jsonl` for part of the catalog, left out of the trend),
/// named so that names sort by time; the oldest beyond [`KEPT`] go.
pub fn new_run_path(partial: bool) -> Result<PathBuf> {
    let dir = runs_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut old: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    old.sort();
    while old.len() >= KEPT {
        let _ = std::fs::remove_file(old.remove(0));
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let tail = if partial { "-partial" } else { "" };
    Ok(dir.join(format!("run-{secs:012}{tail}.jsonl")))
}

/// The newest kept run.
pub fn latest() -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(runs_dir())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_sums_up_from_windows_or_from_its_words() {
        let words = r#"{"record":"event","strategy":"naive","lapic":"x2apic","event":{"type":"result","test":"t","iterations":100}}
{"record":"result","test":"t","labels":["naive","x2apic"],"outcome":"pass","message":"a window_coverage=57/60 (95%)","seconds":2.0}
{"record":"result","test":"u","labels":["naive","x2apic"],"outcome":"pass","message":"window_coverage=3/4 (75%)","seconds":2.0}
"#;
        let p = point("r", &Run::parse(words).unwrap());
        assert_eq!(p.iterations_per_s, 50.0);
        assert_eq!(p.coverage, Some(60.0 / 64.0));
        let windows = r#"{"record":"event","strategy":"naive","lapic":"x2apic","event":{"type":"window","test":"t","stub":"s","offset":0,"hits":0,"corrupted":0}}
{"record":"event","strategy":"naive","lapic":"x2apic","event":{"type":"window","test":"t","stub":"s","offset":2,"hits":5,"corrupted":0}}
"#;
        assert_eq!(
            point("w", &Run::parse(windows).unwrap()).coverage,
            Some(0.5)
        );
    }

    #[test]
    fn kept_runs_are_read_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let line = "{\"record\":\"result\",\"test\":\"t\",\"labels\":[],\"outcome\":\"pass\",\"message\":\"window_coverage=1/2\",\"seconds\":1}\n";
        std::fs::write(dir.path().join("run-000000000002.jsonl"), line).unwrap();
        std::fs::write(dir.path().join("run-000000000001.jsonl"), line).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join("run-000000000003-partial.jsonl"), line).unwrap();
        let names: Vec<String> = points(dir.path()).into_iter().map(|p| p.run).collect();
        assert_eq!(names, ["run-000000000001", "run-000000000002"]);
    }
}
