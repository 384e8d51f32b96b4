//! Calls through FreeSWITCH, over its event socket (ESL, inbound mode: we
//! connect to `mod_event_socket`).
//!
//! One session task owns the connection: it authenticates, subscribes to
//! the three events that tell a call's story (`CHANNEL_ANSWER`,
//! `CHANNEL_HANGUP_COMPLETE`, `BACKGROUND_JOB`), writes the `bgapi
//! originate` commands [`FreeswitchConnector::dial`] hands it, and turns
//! events into [`Report`]s. Each call is tagged with the channel variable
//! `rackwave_call_id`, so its events name it without any table of ours;
//! whether it is recorded travels the same way, so the report of a call
//! placed before a reconnect is still complete.
//!
//! When the socket drops, the task reconnects with a doubling delay. The
//! calls go on inside FreeSWITCH, but ESL does not replay events: whatever
//! happened to them while we were away is lost (logged as a warning), and
//! the service must time such calls out on its own.
//!
//! The wire format and the events-to-reports rules are in [`esl`], without
//! I/O.

mod esl;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use self::esl::{Calls, DialPlan, Event, Frame, Framer};
use super::{OutboundCall, Reports, SendError};

/// `[telnxo.voice]` when `connector = "freeswitch"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreeswitchConfig {
    /// Where `mod_event_socket` listens.
    pub host: String,
    pub port: u16,
    pub password: String,
    /// The endpoint to call; `{to}` becomes the number's digits.
    pub dial_string: String,
    /// For calls that speak text: the `speak` application's engine and voice.
    pub tts_engine: String,
    pub tts_voice: String,
    /// Where FreeSWITCH writes recordings (`<call_id>.wav`), on its host.
    pub recordings_dir: String,
    /// Where those files are served; the file name is appended. Empty:
    /// recordings are made but reports carry no URL.
    pub recording_url_base: String,
    /// The delay before reconnecting, doubling up to the maximum.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// For the handshake and for FreeSWITCH to take a command.
    pub command_timeout_secs: u64,
}

impl Default for FreeswitchConfig {
    fn default() -> Self {
        FreeswitchConfig {
            host: "127.0.0.1".into(),
            port: 8021,
            password: "ClueCon".into(),
            dial_string: "sofia/gateway/carrier/{to}".into(),
            tts_engine: "flite".into(),
            tts_voice: "kal".into(),
            recordings_dir: "/var/lib/freeswitch/recordings".into(),
            recording_url_base: String::new(),
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            command_timeout_secs: 10,
        }
    }
}

/// Letters, digits and `-_.`: what may go into a command unquoted.
fn word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl FreeswitchConfig {
    pub fn check(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("telnxo.voice.{key} {why}"));
        if self.host.is_empty() || self.host.chars().any(char::is_whitespace) {
            return bad("host", "must be a host name or address");
        }
        if self.port == 0 {
            return bad("port", "must not be 0");
        }
        // It is sent as a command line.
        if self.password.is_empty() || self.password.chars().any(|c| c.is_control()) {
            return bad("password", "must be set, on one line");
        }
        if !self.dial_string.contains("{to}")
            || self
                .dial_string
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\'')
        {
            return bad("dial_string", "must contain {to} and no spaces or quotes");
        }
        if !word(&self.tts_engine) || !word(&self.tts_voice) {
            return bad("tts_engine/tts_voice", "must be plain names");
        }
        if !self.recordings_dir.starts_with('/')
            || !self
                .recordings_dir
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        {
            return bad(
                "recordings_dir",
                "must be an absolute path of letters, digits and /-_.",
            );
        }
        let url = &self.recording_url_base;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return bad("recording_url_base", "must be empty or an http(s) URL");
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return bad(
                "reconnect_min_ms",
                "must be above 0 and at most reconnect_max_ms",
            );
        }
        if !(1..=300).contains(&self.command_timeout_secs) {
            return bad("command_timeout_secs", "must be between 1 and 300");
        }
        Ok(())
    }
}

/// An originate for the session task to write, and where its reply goes.
struct Dial {
    command: String,
    job_uuid: String,
    call_id: String,
    reply: oneshot::Sender<Result<(), SendError>>,
}

#[derive(Clone)]
pub struct FreeswitchConnector {
    commands: mpsc::Sender<Dial>,
    config: Arc<FreeswitchConfig>,
}

impl FreeswitchConnector {
    /// Starts the session task (the config was checked by whoever loaded
    /// it). It runs until `shutdown` turns true or every clone of the
    /// connector is gone.
    pub fn start(
        config: FreeswitchConfig,
        reports: Reports,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let config = Arc::new(config);
        let (commands, rx) = mpsc::channel(64);
        tokio::spawn(run(config.clone(), reports, shutdown, rx));
        FreeswitchConnector { commands, config }
    }

    /// Places a call: `Ok` once FreeSWITCH has taken the `bgapi originate`
    /// (the call's progress comes later as reports). Not connected, or no
    /// answer in time: [`SendError::Temporary`]; refused by FreeSWITCH or a
    /// call that cannot be written as a command: [`SendError::Permanent`].
    ///
    /// A connection lost between writing the command and its reply is
    /// reported as temporary although FreeSWITCH may have taken it; such a
    /// retry can ring twice, which we prefer to losing the call.
    pub async fn dial(&self, call: &OutboundCall) -> Result<(), SendError> {
        let job_uuid = new_uuid();
        let plan = DialPlan {
            dial_string: &self.config.dial_string,
            tts_engine: &self.config.tts_engine,
            tts_voice: &self.config.tts_voice,
            recordings_dir: &self.config.recordings_dir,
        };
        let command = esl::originate_command(call, &job_uuid, &new_uuid(), &plan)?;
        let (reply, answer) = oneshot::channel();
        let dial = Dial {
            command,
            job_uuid,
            call_id: call.call_id.clone(),
            reply,
        };
        let wait = async {
            self.commands
                .send(dial)
                .await
                .map_err(|_| SendError::Temporary("FreeSWITCH connector stopped".into()))?;
            answer.await.map_err(|_| {
                SendError::Temporary("FreeSWITCH connection lost before it answered".into())
            })?
        };
        let limit = Duration::from_secs(self.config.command_timeout_secs);
        tokio::time::timeout(limit, wait).await.unwrap_or_else(|_| {
            Err(SendError::Temporary(
                "FreeSWITCH did not answer in time".into(),
            ))
        })
    }
}

/// Why a session ended.
enum Ended {
    /// Asked to stop, or nobody left to serve.
    Stop,
    /// The connection failed or went; `authed` when it had been up.
    Lost { authed: bool, why: String },
}

const SUBSCRIBE: &str = "event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB\n\n";

async fn run(
    config: Arc<FreeswitchConfig>,
    reports: Reports,
    mut shutdown: watch::Receiver<bool>,
    mut commands: mpsc::Receiver<Dial>,
) {
    let mut calls = Calls::new(&config.recording_url_base);
    let min = Duration::from_millis(config.reconnect_min_ms);
    let max = Duration::from_millis(config.reconnect_max_ms);
    let mut backoff = min;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let session = Session {
            config: &config,
            reports: &reports,
            calls: &mut calls,
        };
        match session.run(&mut shutdown, &mut commands).await {
            Ended::Stop => return,
            Ended::Lost { authed: true, why } => {
                tracing::warn!(
                    why,
                    "FreeSWITCH event socket lost; reconnecting. Calls in progress go on in \
                     FreeSWITCH, but their events until we are back are lost"
                );
                backoff = min;
            }
            Ended::Lost { authed: false, why } => {
                tracing::warn!(
                    why,
                    host = %config.host,
                    port = config.port,
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot use the FreeSWITCH event socket"
                );
            }
        }
        // Calls dialled meanwhile are refused at once: the dispatcher
        // retries them later instead of waiting here.
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                dial = commands.recv() => match dial {
                    Some(d) => {
                        let _ = d.reply.send(Err(SendError::Temporary(
                            "not connected to FreeSWITCH".into(),
                        )));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(max);
    }
}

/// One connection's life.
struct Session<'a> {
    config: &'a FreeswitchConfig,
    reports: &'a Reports,
    calls: &'a mut Calls,
}

/// Reads until the framer has a frame.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    framer: &mut Framer,
    chunk: &mut [u8],
) -> Result<Frame, String> {
    loop {
        if let Some(f) = framer.next_frame().map_err(|e| e.0)? {
            return Ok(f);
        }
        match rd.read(chunk).await {
            Ok(0) => return Err("closed by FreeSWITCH".into()),
            Ok(n) => framer.push(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `+OK …` or the reply's text as the error.
fn expect_ok(frame: &Frame, what: &str) -> Result<(), String> {
    let text = frame.header("Reply-Text").unwrap_or("");
    if frame.content_type() == "command/reply" && text.starts_with("+OK") {
        Ok(())
    } else {
        Err(format!(
            "{what} refused: {:?} {text:?}",
            frame.content_type()
        ))
    }
}

impl Session<'_> {
    async fn run(
        mut self,
        shutdown: &mut watch::Receiver<bool>,
        commands: &mut mpsc::Receiver<Dial>,
    ) -> Ended {
        let lost = |why: String| Ended::Lost { authed: false, why };
        let limit = Duration::from_secs(self.config.command_timeout_secs);
        let mut framer = Framer::default();
        let mut chunk = vec![0u8; 16 * 1024];
        let handshake = async {
            let stream = TcpStream::connect((self.config.host.as_str(), self.config.port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (mut rd, mut wr) = stream.into_split();
            let hello = read_frame(&mut rd, &mut framer, &mut chunk).await?;
            if hello.content_type() != "auth/request" {
                return Err(format!("greeted with {:?}", hello.content_type()));
            }
            write(&mut wr, &format!("auth {}\n\n", self.config.password)).await?;
            let reply = read_frame(&mut rd, &mut framer, &mut chunk).await?;
            expect_ok(&reply, "password")?;
            write(&mut wr, SUBSCRIBE).await?;
            let reply = read_frame(&mut rd, &mut framer, &mut chunk).await?;
            expect_ok(&reply, "event subscription")?;
            Ok((rd, wr))
        };
        let (mut rd, mut wr) = tokio::select! {
            r = tokio::time::timeout(limit, handshake) => match r {
                Ok(Ok(halves)) => halves,
                Ok(Err(why)) => return lost(why),
                Err(_) => return lost("no handshake in time".into()),
            },
            _ = stopped(shutdown) => return Ended::Stop,
        };
        tracing::info!(host = %self.config.host, port = self.config.port, "connected to the FreeSWITCH event socket");
        let lost = |why: String| Ended::Lost { authed: true, why };
        // Replies come in the order of the commands.
        let mut waiting: VecDeque<oneshot::Sender<Result<(), SendError>>> = VecDeque::new();
        loop {
            loop {
                match framer.next_frame() {
                    Ok(Some(frame)) => {
                        if let Err(stop) = self.on_frame(frame, &mut waiting).await {
                            return stop;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return lost(format!("unreadable stream: {}", e.0)),
                }
            }
            tokio::select! {
                read = rd.read(&mut chunk) => match read {
                    Ok(0) => return lost("closed by FreeSWITCH".into()),
                    Ok(n) => framer.push(&chunk[..n]),
                    Err(e) => return lost(e.to_string()),
                },
                dial = commands.recv() => {
                    let Some(dial) = dial else { return Ended::Stop };
                    self.calls.job_started(&dial.job_uuid, &dial.call_id);
                    if let Err(why) = write(&mut wr, &dial.command).await {
                        let _ = dial.reply.send(Err(SendError::Temporary(format!(
                            "FreeSWITCH connection: {why}"
                        ))));
                        return lost(why);
                    }
                    waiting.push_back(dial.reply);
                }
                _ = stopped(shutdown) => return Ended::Stop,
            }
        }
    }

    /// One frame of a connected session; `Err` ends the session.
    async fn on_frame(
        &mut self,
        frame: Frame,
        waiting: &mut VecDeque<oneshot::Sender<Result<(), SendError>>>,
    ) -> Result<(), Ended> {
        match frame.content_type() {
            "command/reply" | "api/response" => {
                let text = frame.header("Reply-Text").unwrap_or("").to_string();
                let Some(reply) = waiting.pop_front() else {
                    tracing::debug!(text, "FreeSWITCH reply to no command of ours");
                    return Ok(());
                };
                let verdict = if text.starts_with("+OK") {
                    Ok(())
                } else if let Some(why) = text.strip_prefix("-ERR") {
                    Err(SendError::Permanent {
                        code: "originate_refused".into(),
                        description: why.trim().to_string(),
                    })
                } else {
                    Err(SendError::Temporary(format!(
                        "FreeSWITCH answered {text:?}"
                    )))
                };
                // The dial may have given up waiting.
                let _ = reply.send(verdict);
            }
            "text/event-plain" => match Event::parse(&frame.body) {
                Ok(event) => {
                    if let Some(report) = self.calls.on_event(&event) {
                        if self.reports.send(report).await.is_err() {
                            // Nobody reads reports any more: the service is gone.
                            return Err(Ended::Stop);
                        }
                    }
                }
                Err(why) => tracing::warn!(why, "malformed FreeSWITCH event skipped"),
            },
            "text/disconnect-notice" => {
                tracing::info!("FreeSWITCH says it is closing the event socket")
            }
            "text/rude-rejection" => tracing::warn!("FreeSWITCH refuses our address (ACL)"),
            other => tracing::debug!(content_type = other, "FreeSWITCH frame ignored"),
        }
        Ok(())
    }
}

async fn write(wr: &mut OwnedWriteHalf, text: &str) -> Result<(), String> {
    wr.write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())
}

/// Resolves once shutdown is asked for (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A random-looking UUID (version 4 layout) for jobs and channels. They
/// only need to be unique, not secret: a counter mixed with per-process
/// random hash keys and the time.
fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(nanos);
        h.write_u64(salt);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    let a = (a & !0xf000) | 0x4000;
    let b = (b & !(0xc000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_checks() {
        let c = FreeswitchConfig::default();
        assert!(c.check().is_ok(), "the defaults work");
        assert_eq!((c.port, c.command_timeout_secs), (8021, 10));
        for bad in [
            FreeswitchConfig {
                host: String::new(),
                ..c.clone()
            },
            FreeswitchConfig {
                port: 0,
                ..c.clone()
            },
            FreeswitchConfig {
                password: "a\nb".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                dial_string: "sofia/gateway/x/".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                dial_string: "sofia/x/{to} &x".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                tts_voice: "a|b".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                recordings_dir: "rec".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                recordings_dir: "/a b".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                recording_url_base: "ftp://x/".into(),
                ..c.clone()
            },
            FreeswitchConfig {
                reconnect_min_ms: 0,
                ..c.clone()
            },
            FreeswitchConfig {
                reconnect_max_ms: 1,
                ..c.clone()
            },
            FreeswitchConfig {
                command_timeout_secs: 0,
                ..c.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let parsed: Result<FreeswitchConfig, _> =
            serde_json::from_value(serde_json::json!({"hots": "x"}));
        assert!(parsed.is_err(), "unknown keys are refused");
    }

    #[test]
    fn uuids_are_distinct_and_shaped() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }
}
