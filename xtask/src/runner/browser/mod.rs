//! The report's check in a real browser: headless Chromium driven over
//! WebDriver (chromedriver) opens the page made from a run's JSON, which must
//! load with no console error and show, for every number it carries
//! (`data-check`), the value the JSON holds. The values expected are read from
//! the JSON here, apart from the page's own model.
//!
//! The check proves it can fail each time it runs: a copy of the page with one
//! number changed must be caught, and so must a copy that logs an error.

mod webdriver;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::qemu::process::Guard;
use crate::report::html::keys;
use webdriver::Client;

/// Flags that work on this kind of machine (no sandbox as root, no network).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Checks the page `cargo xtask report` makes from `json`; `Ok` says what
/// was compared.
pub fn check(json: &Path, kernel: Option<&Path>) -> Result<String> {
    let dir = crate::target_dir().join("report-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let page = dir.join("report.html");
    crate::report::html::write(json, None, kernel, &page)?;
    let text = std::fs::read_to_string(json)?;
    let expected = expected(&text)?;

    let html = std::fs::read_to_string(&page)?;
    let tampered = dir.join("tampered.html");
    std::fs::write(
        &tampered,
        tamper(&html).context("the page has no number to tamper with")?,
    )?;
    let noisy = dir.join("noisy.html");
    std::fs::write(
        &noisy,
        html.replace(
            "</body>",
            "<script>console.error('planted')</script></body>",
        ),
    )?;

    let browser = Browser::start(&dir.join("profile"))?;
    let seen = browser.open(&page)?;
    ensure!(
        seen.errors.is_empty(),
        "the page logged errors: {}",
        seen.errors.join("; ")
    );
    compare(&expected, &seen.numbers)?;
    let caught = browser.open(&tampered)?;
    ensure!(
        compare(&expected, &caught.numbers).is_err(),
        "a page with a number changed passed the comparison: the check is blind"
    );
    let caught = browser.open(&noisy)?;
    ensure!(
        !caught.errors.is_empty(),
        "a page that logs an error showed none: the console check is blind"
    );
    Ok(format!(
        "{} numbers on the page equal the JSON's, no console error; a changed number and a logged error were both caught",
        seen.numbers.len()
    ))
}

/// Every checked number, as the JSON says it: key -> values (a key can
/// repeat when a test ran twice in one suite).
pub fn expected(jsonl: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut kernel: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    let mut heat: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let s = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let mut results = Vec::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line)?;
        match record["record"].as_str() {
            Some("event") => {
                let event = &record["event"];
                let key = (
                    s(event, "test"),
                    s(&record, "strategy"),
                    s(&record, "lapic"),
                );
                match event["type"].as_str() {
                    Some("result") => {
                        kernel.insert(key, event.clone());
                    }
                    Some("window") => {
                        let offset = event["offset"].as_u64().unwrap_or(0);
                        for what in ["hits", "corrupted"] {
                            let k =
                                keys::heat(&key.0, &key.1, &key.2, &s(event, "stub"), offset, what);
                            *heat.entry(k).or_default() += event[what].as_u64().unwrap_or(0);
                        }
                    }
                    _ => {}
                }
            }
            Some("result") => results.push(record),
            _ => {}
        }
    }
    for outcome in ["pass", "fail", "skip", "not-reproduced"] {
        outcomes.insert(outcome.into(), 0);
    }
    for r in &results {
        let (test, outcome) = (s(r, "test"), s(r, "outcome"));
        let label = |i: usize| r["labels"][i].as_str().unwrap_or("").to_string();
        let (strategy, lapic) = (label(0), label(1));
        *outcomes.entry(outcome.clone()).or_default() += 1;
        let mut add = |what: &str, value: String| {
            out.entry(keys::cell(&test, &strategy, &lapic, what))
                .or_default()
                .push(value);
        };
        add("outcome", outcome);
        if let Some(event) = kernel.get(&(test.clone(), strategy.clone(), lapic.clone())) {
            if let Some(n) = event["iterations"].as_u64() {
                add("iterations", n.to_string());
            }
            if let Some(Value::Object(counters)) = event.get("counters") {
                for (name, value) in counters {
                    if let Some(n) = value.as_u64() {
                        add(name, n.to_string());
                    }
                }
            }
        }
    }
    for (outcome, n) in outcomes {
        out.insert(keys::summary(&outcome), vec![n.to_string()]);
    }
    for (k, n) in heat {
        out.insert(k, vec![n.to_string()]);
    }
    Ok(out)
}

/// Equal when every expected key shows its values, and every other number
/// on the page is a zero (an instruction no NMI reported).
pub fn compare(expected: &BTreeMap<String, Vec<String>>, seen: &[(String, String)]) -> Result<()> {
    let mut page: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (k, v) in seen {
        page.entry(k.as_str()).or_default().push(v.clone());
    }
    for (key, want) in expected {
        let mut got = page.remove(key.as_str()).unwrap_or_default();
        let mut want = want.clone();
        got.sort();
        want.sort();
        if got != want {
            bail!("`{key}`: the page shows {got:?}, the JSON holds {want:?}");
        }
    }
    if let Some((key, values)) = page.iter().find(|(_, v)| v.iter().any(|v| v != "0")) {
        bail!("`{key}` shows {values:?} on the page but is not in the JSON");
    }
    Ok(())
}

/// The page with its first checked number raised by one.
fn tamper(html: &str) -> Option<String> {
    let at = html.find("data-check=\"summary/pass\">")? + "data-check=\"summary/pass\">".len();
    let end = at + html[at..].find('<')?;
    let n: u64 = html[at..end].parse().ok()?;
    Some(format!("{}{}{}", &html[..at], n + 1, &html[end..]))
}

struct Seen {
    numbers: Vec<(String, String)>,
    errors: Vec<String>,
}

struct Browser {
    client: Client,
    session: String,
    _driver: Guard,
}

impl Browser {
    fn start(profile: &Path) -> Result<Browser> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(crate::qemu::process::find_program("chromedriver").context(
            "`chromedriver` not found on PATH: install the Debian package `chromium-driver`",
        )?);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::qemu::process::show(&cmd);
        let driver = Guard::spawn(&mut cmd)?;
        let client = Client::new(port);
        let start = Instant::now();
        while client.call("GET", "/status", None).is_err() {
            ensure!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let binary: PathBuf = crate::qemu::process::find_program("chromium")
            .context("`chromium` not found on PATH: install the Debian package `chromium`")?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = client
            .call("POST", "/session", Some(&caps))
            .context("starting chromium")?;
        let session = session["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(Browser {
            client,
            session,
            _driver: driver,
        })
    }

    fn open(&self, page: &Path) -> Result<Seen> {
        let s = &self.session;
        let url = format!("file://{}", page.canonicalize()?.display());
        self.client.call(
            "POST",
            &format!("/session/{s}/url"),
            Some(&json!({ "url": url })),
        )?;
        let script = "return [document.readyState, Array.from(document.querySelectorAll('[data-check]')).map(e => [e.dataset.check, e.textContent])];";
        let got = self.client.call(
            "POST",
            &format!("/session/{s}/execute/sync"),
            Some(&json!({"script": script, "args": []})),
        )?;
        ensure!(
            got[0] == "complete",
            "the page did not finish loading: {}",
            got[0]
        );
        let numbers = got[1]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap_or("").into(),
                            p[1].as_str().unwrap_or("").into(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = json!({"type": "browser"});
        let log = self
            .client
            .call("POST", &format!("/session/{s}/se/log"), Some(&body))
            .or_else(|_| {
                self.client
                    .call("POST", &format!("/session/{s}/log"), Some(&body))
            })
            .context("reading the browser's console log")?;
        let errors = log
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Seen { numbers, errors })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .client
            .call("DELETE", &format!("/session/{}", self.session), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"{"record":"event","strategy":"naive","lapic":"x2apic","event":{"type":"window","test":"t","stub":"db_stub","offset":4,"hits":7,"corrupted":2}}
{"record":"event","strategy":"naive","lapic":"x2apic","event":{"type":"result","test":"t","iterations":10,"counters":{"nmis":9}}}
{"record":"result","test":"t","labels":["naive","x2apic"],"outcome":"pass","message":"","seconds":1}
"#;

    #[test]
    fn the_json_gives_every_number_and_the_page_model_agrees() {
        let want = expected(RUN).unwrap();
        assert_eq!(want["cell/t/naive/x2apic/nmis"], ["9"]);
        assert_eq!(want["heat/t/naive/x2apic/db_stub/0x4/hits"], ["7"]);
        assert_eq!(want["summary/pass"], ["1"]);
        // The page made by html.rs shows exactly these.
        let run = crate::report::html::Run::parse(RUN).unwrap();
        let page = crate::report::html::render(&crate::report::html::Inputs {
            title: "t",
            run: &run,
            stubs: &BTreeMap::new(),
            platforms: None,
            trend: &[],
        });
        let seen = scrape(&page);
        compare(&want, &seen).unwrap();
        let changed = scrape(&tamper(&page).unwrap());
        assert!(compare(&want, &changed).is_err());
        let mut extra = seen.clone();
        extra.push(("heat/x".into(), "3".into()));
        assert!(compare(&want, &extra).is_err());
    }

    /// What the browser's script reads, by string search.
    fn scrape(page: &str) -> Vec<(String, String)> {
        page.split("data-check=\"")
            .skip(1)
            .map(|rest| {
                let (key, rest) = rest.split_once("\">").unwrap();
                let value = rest.split('<').next().unwrap();
                (key.to_string(), value.to_string())
            })
            .collect()
    }
}
