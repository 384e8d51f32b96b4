//! A real browser for the page tests: Debian's headless Chromium driven
//! over WebDriver by its `chromedriver` (both installed by `.ci/run`),
//! with a fresh profile in a temporary directory. Where the two are not
//! installed, [`Browser::start`] prints a notice and gives `None`, unless
//! `RACKWAVE_REQUIRE_BROWSER` is set (CI sets it), when it fails.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use crate::binary::free_addr;

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| std::path::Path::new(n).exists())
        .map(|n| n.to_string())
}

impl Browser {
    /// Chromium, headless, ready; `None` (with a notice) when it is not
    /// installed and not required.
    pub async fn start() -> Option<Browser> {
        let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                std::env::var_os("RACKWAVE_REQUIRE_BROWSER").is_none(),
                "RACKWAVE_REQUIRE_BROWSER is set but chromium and chromedriver are not installed"
            );
            eprintln!("NOTICE: chromium or chromedriver not installed: browser test skipped");
            return None;
        };
        let addr = free_addr();
        let child = Command::new(driver)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://{addr}");
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        driver: child,
                        _profile: profile,
                    })
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not take a session: {last:?}");
    }

    /// Saves a screenshot of the page (PNG) to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

/// A hop on the way to the server: it records every URL a browser asks it
/// for and sends the browser on to the same path and query at the server
/// (`307`), or, while held, answers a plain page instead. Set as a
/// platform's `[sso]` URL, it shows a test the single sign-on URL the
/// browser followed (which a redirect keeps out of the browser's
/// history), and holding it lets a test stop a sign-on before the
/// platform sees its token.
pub struct Hop {
    pub url: String,
    state: Arc<HopState>,
}

#[derive(Default)]
struct HopState {
    target: Mutex<String>,
    seen: Mutex<Vec<String>>,
    held: std::sync::atomic::AtomicBool,
}

impl Hop {
    pub async fn start() -> Hop {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(HopState::default());
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let state = shared.clone();
            async move {
                let path = uri
                    .path_and_query()
                    .map_or("/".to_string(), |p| p.to_string());
                state
                    .seen
                    .lock()
                    .unwrap()
                    .push(format!("http://{addr}{path}"));
                if state.held.load(std::sync::atomic::Ordering::SeqCst) {
                    return axum::response::Response::builder()
                        .header("content-type", "text/html")
                        .body(axum::body::Body::from("<p>held</p>"))
                        .unwrap();
                }
                let target = format!("{}{path}", state.target.lock().unwrap());
                axum::response::Response::builder()
                    .status(307)
                    .header("location", target)
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hop {
            url: format!("http://{addr}"),
            state,
        }
    }

    /// Where the hop sends browsers on (the server's base URL).
    pub fn send_to(&self, base: &str) {
        *self.state.target.lock().unwrap() = base.to_string();
    }

    /// While `held`, the hop answers itself instead of sending on.
    pub fn hold(&self, held: bool) {
        self.state
            .held
            .store(held, std::sync::atomic::Ordering::SeqCst);
    }

    /// The URLs asked for so far, oldest first.
    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }

    /// `url` with the hop's base replaced by `base`.
    pub fn at(&self, url: &str, base: &str) -> String {
        url.replacen(&self.url, base, 1)
    }
}
