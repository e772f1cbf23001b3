//! Headless Chromium (Debian's `chromium`) driven through `chromedriver` (W3C WebDriver over
//! loopback HTTP): what the paywall tests use to open a page as a person would. The driver
//! and the browser it starts run in one process group, stopped by the driver's PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use testkit::{Proc, free_port};

/// The browser binary (`scripts/install-browser.sh`: Debian's chromium).
pub fn chromium_bin() -> Result<PathBuf> {
    testkit::artifacts::installed("L402_CHROMIUM", "install-browser.sh")
}

/// The driver, installed beside the browser (Debian's chromium-driver).
fn chromedriver_bin() -> Result<PathBuf> {
    Ok(chromium_bin()?.with_file_name("chromedriver"))
}

/// One browser session.
pub struct Browser {
    base: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
    _driver: Proc,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `javascript`: whether pages may
    /// run scripts (off: a person who turned JavaScript off).
    pub fn start(log_dir: &Path, javascript: bool) -> Result<Browser> {
        let port = free_port();
        let mut cmd = Command::new(chromedriver_bin()?);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let mut driver = Proc::spawn(&format!("chromedriver-{port}"), cmd, log_dir)?;
        let base = format!("http://127.0.0.1:{port}");
        driver.wait_http(&format!("{base}/status"), Duration::from_secs(20))?;
        let profile = tempfile::tempdir()?;
        let mut prefs = json!({});
        if !javascript {
            prefs = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_bin()?,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=900,1300",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": prefs,
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()?
            .json()?;
        let id = resp["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {resp}"))?;
        Ok(Browser {
            base: format!("{base}/session/{id}"),
            http,
            _profile: profile,
            _driver: driver,
        })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send()?.json()?;
        if v["value"].get("error").is_some() {
            bail!("webdriver {path}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    /// Navigates and waits for the page to load.
    pub fn open(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn run(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs `script` whose last argument is the callback to call with the result.
    pub fn run_async(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/timeouts",
            Some(json!({"script": 60_000})),
        )?;
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs `source` in every document before its own scripts (DevTools
    /// `Page.addScriptToEvaluateOnNewDocument`, through chromedriver).
    pub fn before_each_page(&self, source: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": source}})),
        )
        .map(|_| ())
    }

    /// The page's title.
    pub fn title(&self) -> Result<String> {
        Ok(self
            .call(reqwest::Method::GET, "/title", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The first element matching `css`: its WebDriver id.
    pub fn find(&self, css: &str) -> Result<String> {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("no element {css}"))
    }

    /// An element's DOM property (`value`, `textContent`...), with no script of the test's.
    pub fn property(&self, css: &str, name: &str) -> Result<String> {
        let id = self.find(css)?;
        let v = self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/property/{name}"),
            None,
        )?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css)?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .map(|_| ())
    }

    /// The visible text of the page.
    pub fn text(&self) -> Result<String> {
        self.property("body", "innerText")
    }

    /// Waits until the page's text contains `needle`; the text it last saw.
    pub fn wait_for_text(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_until(&format!("text {needle:?}"), timeout, || {
            self.text().ok().filter(|t| t.contains(needle))
        })
    }

    /// Waits until the page's title is `title` (a click that submits a form returns before
    /// the next page has loaded).
    pub fn wait_for_title(&self, title: &str, timeout: Duration) -> Result<String> {
        self.wait_until(&format!("title {title:?}"), timeout, || {
            self.title().ok().filter(|t| t == title)
        })
    }

    fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        seen: impl Fn() -> Option<String>,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            // A reload in progress answers with an error or the old page: ask again.
            if let Some(v) = seen() {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!(
                    "page never showed {what}; its title is {:?}, its text: {}",
                    self.title().unwrap_or_default(),
                    self.text().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG of the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None)?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot is not a PNG");
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Runs axe-core (`axe_source`: `axe.min.js`) in the page; the ids and targets of the
    /// serious and critical violations.
    pub fn axe(&self, axe_source: &str) -> Result<Vec<String>> {
        self.run(axe_source, json!([]))?;
        let v = self.run_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
               .catch(e => done(['axe failed: ' + e]));",
            json!([]),
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every cookie the browser holds for the current page, as `name=value; Path=...` lines.
    pub fn cookies(&self) -> Result<Vec<Value>> {
        Ok(self
            .call(reqwest::Method::GET, "/cookie", None)?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session so Chromium exits; the driver's process group is stopped after.
        let _ = self.http.delete(&self.base).send();
    }
}
