//! A real browser for dashboard tests: Debian's headless Chromium driven through ChromeDriver (W3C
//! WebDriver over HTTP on 127.0.0.1, a free port), with helpers to navigate, find, click, type, run
//! scripts, switch the colour scheme, take screenshots and run axe-core in a page. ChromeDriver (and the
//! browser it started) stop when the [`TestBrowser`] is dropped, also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::tools::require_tool;

/// How long ChromeDriver may take to answer `/status` after it starts.
const DRIVER_START_LIMIT: Duration = Duration::from_secs(20);
/// How long a single WebDriver command may take (page loads included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The W3C key under which an element reference comes back.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The desktop viewport of the dashboard tests.
pub const DESKTOP: (u32, u32) = (1280, 800);
/// A phone's viewport (an iPhone 12-14 in CSS pixels).
pub const PHONE: (u32, u32) = (390, 844);
/// The axe-core the tests inject (fetched by scripts/install-deps).
const AXE_RELATIVE_PATH: &str = "npm/node_modules/axe-core/axe.min.js";

/// The browser's flags: headless, no sandbox (tests run as root), no network beyond what a page asks
/// for (this machine refuses outbound connections, and Chromium would retry them at every start).
const CHROMIUM_FLAGS: [&str; 11] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
];

/// ChromeDriver with one browser session.
#[derive(Debug)]
pub struct TestBrowser {
    driver: Child,
    address: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

/// The colour scheme pages are shown in (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourScheme {
    Light,
    Dark,
}

impl ColourScheme {
    pub fn name(self) -> &'static str {
        match self {
            ColourScheme::Light => "light",
            ColourScheme::Dark => "dark",
        }
    }
}

impl TestBrowser {
    /// Starts ChromeDriver on a free port of 127.0.0.1 and opens a session of headless Chromium at the
    /// desktop size.
    pub fn start() -> Result<TestBrowser> {
        require_tool("chromedriver")?;
        let chromium = chromium_binary()?;
        let port = free_port()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let profile = tempfile::tempdir().context("creating a browser profile directory")?;
        let mut browser = TestBrowser { driver, address, session: String::new(), _profile: profile };
        browser.wait_until_ready()?;
        let mut arguments: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        arguments.push(format!("--user-data-dir={}", browser._profile.path().display()));
        arguments.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": arguments},
                "unhandledPromptBehavior": "ignore",
            }}
        });
        let answer = browser.request("POST", "/session", Some(&capabilities))?;
        browser.session = answer["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver gave no session id: {answer}"))?
            .to_string();
        browser.set_window_size(DESKTOP)?;
        Ok(browser)
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + DRIVER_START_LIMIT;
        loop {
            if let Ok(status) = self.request("GET", "/status", None)
                && status["ready"].as_bool() == Some(true)
            {
                return Ok(());
            }
            if let Some(status) = self.driver.try_wait()? {
                bail!("chromedriver exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on {} within {DRIVER_START_LIMIT:?}", self.address);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn command(&self, method: &str, rest: &str, body: Option<&Value>) -> Result<Value> {
        self.request(method, &self.session_path(rest), body)
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.command("POST", "/url", Some(&json!({ "url": url })))
            .with_context(|| format!("opening {url}"))?;
        Ok(())
    }

    pub fn current_url(&self) -> Result<String> {
        Ok(self.command("GET", "/url", None)?.as_str().unwrap_or_default().to_string())
    }

    pub fn title(&self) -> Result<String> {
        Ok(self.command("GET", "/title", None)?.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, selector: &str) -> Result<Element> {
        let answer = self
            .command("POST", "/element", Some(&json!({"using": "css selector", "value": selector})))
            .with_context(|| format!("finding {selector:?} on {}", self.current_url().unwrap_or_default()))?;
        element_of(&answer)
    }

    /// Every element matching a CSS selector (none is not an error).
    pub fn find_all(&self, selector: &str) -> Result<Vec<Element>> {
        let answer =
            self.command("POST", "/elements", Some(&json!({"using": "css selector", "value": selector})))?;
        answer.as_array().map(|elements| elements.iter().map(element_of).collect()).unwrap_or(Ok(Vec::new()))
    }

    /// Waits up to `timeout` for an element matching `selector` to exist.
    pub fn wait_for(&self, selector: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find_all(selector)?.into_iter().next() {
                return Ok(element);
            }
            if Instant::now() > deadline {
                bail!("no {selector:?} on {} after {timeout:?}", self.current_url().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` until `script` (a function body) returns true.
    pub fn wait_until(&self, script: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.execute(script, &[])?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{script:?} did not become true within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn text(&self, element: &Element) -> Result<String> {
        Ok(self
            .command("GET", &format!("/element/{}/text", element.id), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        let answer = self.command("GET", &format!("/element/{}/attribute/{name}", element.id), None)?;
        Ok(answer.as_str().map(str::to_string))
    }

    pub fn click(&self, element: &Element) -> Result<()> {
        self.command("POST", &format!("/element/{}/click", element.id), Some(&json!({})))?;
        Ok(())
    }

    pub fn type_text(&self, element: &Element, text: &str) -> Result<()> {
        self.command("POST", &format!("/element/{}/value", element.id), Some(&json!({ "text": text })))?;
        Ok(())
    }

    /// Accepts the open `confirm()` dialog.
    pub fn accept_dialog(&self) -> Result<()> {
        self.command("POST", "/alert/accept", Some(&json!({})))?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.command("POST", "/execute/sync", Some(&json!({"script": script, "args": args})))
    }

    /// Runs `script`, whose last argument is a callback it calls with its result.
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.command("POST", "/execute/async", Some(&json!({"script": script, "args": args})))
    }

    pub fn set_window_size(&self, (width, height): (u32, u32)) -> Result<()> {
        self.command("POST", "/window/rect", Some(&json!({"width": width, "height": height})))?;
        // The window includes no browser chrome in headless mode, but make the viewport exact.
        let viewport =
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600});
        self.chromium("Emulation.setDeviceMetricsOverride", viewport)?;
        Ok(())
    }

    /// Shows pages as a system in light or dark mode would.
    pub fn set_colour_scheme(&self, scheme: ColourScheme) -> Result<()> {
        let features = json!({"features": [{"name": "prefers-color-scheme", "value": scheme.name()}]});
        self.chromium("Emulation.setEmulatedMedia", features)?;
        Ok(())
    }

    /// A Chrome DevTools Protocol command, through ChromeDriver.
    pub fn chromium(&self, command: &str, parameters: Value) -> Result<Value> {
        self.command("POST", "/goog/cdp/execute", Some(&json!({"cmd": command, "params": parameters})))
    }

    /// Saves a PNG of the viewport to `path` (its directory is created).
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let answer = self.command("GET", "/screenshot", None)?;
        let encoded = answer.as_str().ok_or_else(|| anyhow!("the screenshot is not base64 text"))?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(encoded).context("decoding the screenshot")?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }

    /// Saves a PNG of the whole page (not only the viewport) to `path`.
    pub fn full_page_screenshot(&self, path: &Path) -> Result<()> {
        let metrics = self.chromium("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let (width, height) =
            (size["width"].as_f64().unwrap_or(1280.0), size["height"].as_f64().unwrap_or(800.0));
        let clip = json!({"x": 0, "y": 0, "width": width, "height": height.min(16_000.0), "scale": 1});
        let shot = self.chromium(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
        )?;
        let encoded = shot["data"].as_str().ok_or_else(|| anyhow!("no screenshot data: {shot}"))?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(encoded).context("decoding the screenshot")?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }

    /// Sets a cookie on the current page's origin.
    pub fn add_cookie(&self, name: &str, value: &str) -> Result<()> {
        self.command("POST", "/cookie", Some(&json!({"cookie": {"name": name, "value": value}})))?;
        Ok(())
    }

    /// The cookies of the current page's origin, as WebDriver describes them.
    pub fn cookies(&self) -> Result<Vec<Value>> {
        Ok(self.command("GET", "/cookie", None)?.as_array().cloned().unwrap_or_default())
    }

    /// Runs axe-core in the current page and returns its violations of impact "serious" or "critical".
    pub fn serious_accessibility_violations(&self) -> Result<Vec<Value>> {
        let axe = std::fs::read_to_string(axe_path()?).context("reading axe-core")?;
        self.execute(&axe, &[])?;
        let script = "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']})\
               .then((results) => done(results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')\
                 .map((v) => ({id: v.id, impact: v.impact, help: v.help,\
                   nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary)}))))\
               .catch((error) => done([{id: 'axe-error', help: String(error)}]));";
        let answer = self.execute_async(script, &[])?;
        Ok(answer.as_array().cloned().unwrap_or_default())
    }

    /// A WebDriver request; returns the answer's `value`, or the WebDriver error as an error.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let (status, text) = read_response(stream).with_context(|| format!("WebDriver {method} {path}"))?;
        let answer: Value = serde_json::from_str(&text)
            .with_context(|| format!("WebDriver {method} {path}: not JSON: {text:.200}"))?;
        if !(200..300).contains(&status) {
            let error = &answer["value"];
            bail!("WebDriver {method} {path}: {} ({}): {}", error["error"], status, error["message"]);
        }
        Ok(answer["value"].clone())
    }
}

impl Drop for TestBrowser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn element_of(answer: &Value) -> Result<Element> {
    let id = answer[ELEMENT_KEY].as_str().ok_or_else(|| anyhow!("not an element: {answer}"))?;
    Ok(Element { id: id.to_string() })
}

/// Reads an HTTP/1.1 response (Content-Length or chunked) to its end.
fn read_response(stream: TcpStream) -> Result<(u16, String)> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim(), 16).context("chunk size")?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn chromium_binary() -> Result<String> {
    for candidate in
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib64/chromium-browser/chromium-browser"]
    {
        if Path::new(candidate).exists() {
            return Ok(candidate.to_string());
        }
    }
    bail!("Chromium is not installed (run scripts/install-deps, which installs chromium and chromium-driver)")
}

/// Where scripts/install-deps put axe-core.
pub fn axe_path() -> Result<PathBuf> {
    let cache = std::env::var_os("ARBOR_TEST_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/arbor-test")
    });
    let path = cache.join(AXE_RELATIVE_PATH);
    if !path.exists() {
        bail!(
            "axe-core is missing at {} (run scripts/install-deps, which fetches it with npm)",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
