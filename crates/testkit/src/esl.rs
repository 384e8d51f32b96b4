//! A fake FreeSWITCH event socket for the tests: the `auth/request`
//! handshake with a password, `event plain …` subscriptions, and `bgapi
//! originate` answered with `+OK Job-UUID` and then played out as a
//! scripted call whose outcome is chosen by the destination number. The
//! events are framed as FreeSWITCH frames them (`text/event-plain`, URL-
//! encoded values, the originate's channel variables as `variable_…`),
//! written here from the protocol's description, without the connector's
//! code. Knobs: dropping every connection, raw bytes, the password.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How a call to a destination plays out. Times in events are made up
/// from the seconds given (the call does not really last that long); the
/// real delay between two steps is [`EslServer::set_step_ms`].
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Rings `ring_secs`, is answered, talks `billsec`, hangs up with
    /// `NORMAL_CLEARING`.
    Answer { ring_secs: u64, billsec: u64 },
    /// The far end is busy: the originate job fails with `-ERR USER_BUSY`
    /// and no channel event is sent.
    Busy,
    /// Rings `ring_secs` and gives up: `CHANNEL_HANGUP_COMPLETE` with
    /// `NO_ANSWER`, then the job's `-ERR NO_ANSWER` (both, as FreeSWITCH).
    NoAnswer { ring_secs: u64 },
    /// Answered, then ends after `after_secs` with `cause`.
    FailAfterAnswer {
        ring_secs: u64,
        after_secs: u64,
        cause: String,
    },
    /// The `bgapi` itself is refused: `-ERR <text>`.
    Refuse(String),
    /// Taken, then nothing ever happens.
    Silent,
}

/// One `bgapi originate` as received.
#[derive(Debug, Clone)]
pub struct Originate {
    /// The whole command line.
    pub line: String,
    pub job_uuid: String,
    /// The `{…}` channel variables, unquoted.
    pub vars: HashMap<String, String>,
    pub dial_string: String,
    /// The application, unquoted (`&speak(flite|kal|…)`).
    pub app: String,
    /// The digits the dial string ends with.
    pub destination: String,
}

enum Msg {
    Command(Vec<String>),
    Out(Vec<u8>),
    Close,
}

struct Client {
    id: u64,
    tx: mpsc::UnboundedSender<Msg>,
    subscribed: bool,
}

struct Shared {
    password: Mutex<String>,
    rules: Mutex<HashMap<String, Outcome>>,
    default: Mutex<Outcome>,
    step_ms: AtomicU64,
    clients: Mutex<Vec<Client>>,
    originates: Mutex<Vec<Originate>>,
    commands: Mutex<Vec<String>>,
    connections: AtomicUsize,
    subscriptions: AtomicUsize,
    auth_failures: AtomicUsize,
    next_id: AtomicU64,
}

pub struct EslServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EslServer {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_connections();
    }
}

impl EslServer {
    /// A fake taking `password`; calls are answered after a second and
    /// last five unless a rule says otherwise.
    pub async fn start(password: &str) -> EslServer {
        let shared = Arc::new(Shared {
            password: Mutex::new(password.to_string()),
            rules: Mutex::default(),
            default: Mutex::new(Outcome::Answer {
                ring_secs: 1,
                billsec: 5,
            }),
            step_ms: AtomicU64::new(30),
            clients: Mutex::default(),
            originates: Mutex::default(),
            commands: Mutex::default(),
            connections: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            auth_failures: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(accepting.clone(), stream));
            }
        });
        EslServer { addr, shared, task }
    }

    pub fn set_password(&self, password: &str) {
        *self.shared.password.lock().unwrap() = password.to_string();
    }

    /// The outcome of calls to `destination` (digits, `+` ignored).
    pub fn rule(&self, destination: &str, outcome: Outcome) {
        self.shared
            .rules
            .lock()
            .unwrap()
            .insert(destination.trim_start_matches('+').to_string(), outcome);
    }

    pub fn set_default(&self, outcome: Outcome) {
        *self.shared.default.lock().unwrap() = outcome;
    }

    /// The real delay between two steps of a call.
    pub fn set_step_ms(&self, ms: u64) {
        self.shared.step_ms.store(ms, Ordering::SeqCst);
    }

    pub fn originates(&self) -> Vec<Originate> {
        self.shared.originates.lock().unwrap().clone()
    }

    /// The first line of every command received, `auth` included.
    pub fn commands(&self) -> Vec<String> {
        self.shared.commands.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// `event plain` subscriptions taken so far (one per good session).
    pub fn subscriptions(&self) -> usize {
        self.shared.subscriptions.load(Ordering::SeqCst)
    }

    pub fn auth_failures(&self) -> usize {
        self.shared.auth_failures.load(Ordering::SeqCst)
    }

    /// Waits (up to 5 s) until `n` subscriptions have been taken in all.
    pub async fn wait_subscriptions(&self, n: usize) {
        wait_until(|| self.subscriptions() >= n, "subscriptions").await;
    }

    /// Waits (up to 5 s) until `n` passwords have been refused in all.
    pub async fn wait_auth_failures(&self, n: usize) {
        wait_until(|| self.auth_failures() >= n, "refused passwords").await;
    }

    /// Closes every connection, as a FreeSWITCH restart would.
    pub fn drop_connections(&self) {
        for c in self.shared.clients.lock().unwrap().drain(..) {
            let _ = c.tx.send(Msg::Close);
        }
    }

    /// Writes these bytes as they are to every subscribed connection.
    pub fn send_raw(&self, bytes: &[u8]) {
        broadcast(&self.shared, bytes.to_vec());
    }
}

async fn wait_until(done: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fake FreeSWITCH: waited 5 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn broadcast(shared: &Shared, bytes: Vec<u8>) {
    for c in shared.clients.lock().unwrap().iter() {
        if c.subscribed {
            let _ = c.tx.send(Msg::Out(bytes.clone()));
        }
    }
}

fn reply(text: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n").into_bytes()
}

/// Reads commands (lines up to an empty one) and hands them on.
async fn read_commands(rd: OwnedReadHalf, tx: mpsc::UnboundedSender<Msg>) {
    let mut rd = BufReader::new(rd);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if !lines.is_empty() && tx.send(Msg::Command(std::mem::take(&mut lines))).is_err() {
                return;
            }
        } else {
            lines.push(line);
        }
    }
    let _ = tx.send(Msg::Close);
}

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.clients.lock().unwrap().push(Client {
        id,
        tx: tx.clone(),
        subscribed: false,
    });
    let reader = tokio::spawn(read_commands(rd, tx));
    let _ = wr.write_all(b"Content-Type: auth/request\n\n").await;
    let mut authed = false;
    while let Some(msg) = rx.recv().await {
        let out = match msg {
            Msg::Close => break,
            Msg::Out(bytes) => bytes,
            Msg::Command(lines) => {
                let (out, close) = command(&shared, id, &mut authed, &lines);
                if wr.write_all(&out).await.is_err() || close {
                    break;
                }
                continue;
            }
        };
        if wr.write_all(&out).await.is_err() {
            break;
        }
    }
    reader.abort();
    let _ = wr.shutdown().await;
    shared.clients.lock().unwrap().retain(|c| c.id != id);
}

/// The answer to one command, and whether to close after it.
fn command(shared: &Arc<Shared>, id: u64, authed: &mut bool, lines: &[String]) -> (Vec<u8>, bool) {
    let first = lines[0].as_str();
    shared.commands.lock().unwrap().push(first.to_string());
    if !*authed {
        let presented = first.strip_prefix("auth ").unwrap_or("\0not auth");
        if presented == *shared.password.lock().unwrap() {
            *authed = true;
            return (reply("+OK accepted"), false);
        }
        shared.auth_failures.fetch_add(1, Ordering::SeqCst);
        let mut out = reply("-ERR invalid");
        out.extend(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n");
        return (out, true);
    }
    if first.starts_with("event plain") {
        for c in shared.clients.lock().unwrap().iter_mut() {
            if c.id == id {
                c.subscribed = true;
            }
        }
        shared.subscriptions.fetch_add(1, Ordering::SeqCst);
        return (reply("+OK event listener enabled plain"), false);
    }
    if first == "exit" {
        return (reply("+OK bye"), true);
    }
    if let Some(args) = first.strip_prefix("bgapi originate ") {
        let job_uuid = lines
            .iter()
            .find_map(|l| l.strip_prefix("Job-UUID: "))
            .map(str::to_string)
            .unwrap_or_else(|| uuid(0));
        let Some(originate) = parse_originate(first, args, &job_uuid) else {
            return (reply("-ERR invalid originate"), false);
        };
        let outcome = shared
            .rules
            .lock()
            .unwrap()
            .get(&originate.destination)
            .cloned()
            .unwrap_or_else(|| shared.default.lock().unwrap().clone());
        shared.originates.lock().unwrap().push(originate.clone());
        if let Outcome::Refuse(text) = &outcome {
            return (reply(&format!("-ERR {text}")), false);
        }
        tokio::spawn(play(shared.clone(), originate, outcome));
        let out = format!(
            "Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job_uuid}\nJob-UUID: {job_uuid}\n\n"
        );
        return (out.into_bytes(), false);
    }
    (reply("-ERR command not found"), false)
}

/// Splits on spaces outside single quotes, dropping the quotes and the
/// backslashes of escaped characters, as FreeSWITCH reads an API's
/// arguments.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_originate(line: &str, args: &str, job_uuid: &str) -> Option<Originate> {
    let args = split_args(args);
    let (target, app) = (args.first()?, args.get(1)?);
    let (vars, dial_string) = match target.strip_prefix('{') {
        Some(rest) => {
            let (vars, dial) = rest.split_once('}')?;
            let vars = vars
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (vars, dial.to_string())
        }
        None => (HashMap::new(), target.clone()),
    };
    let destination: String = dial_string
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(Originate {
        line: line.to_string(),
        job_uuid: job_uuid.to_string(),
        vars,
        dial_string,
        app: app.clone(),
        destination,
    })
}

fn uuid(n: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A `text/event-plain` frame: the event's headers, then its own body.
pub fn event_frame(headers: &[(String, String)], body: &str) -> Vec<u8> {
    let mut inner: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", url_encode(v)))
        .collect();
    if body.is_empty() {
        inner.push('\n');
    } else {
        inner.push_str(&format!("Content-Length: {}\n\n{body}", body.len()));
    }
    format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
        inner.len()
    )
    .into_bytes()
}

const SEC: u64 = 1_000_000;

/// What every event of a call carries.
fn channel_headers(name: &str, at_us: u64, o: &Originate) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = vec![
        ("Event-Name".into(), name.into()),
        (
            "Core-UUID".into(),
            "6d4c3b2a-0000-4000-8000-000000000001".into(),
        ),
        ("FreeSWITCH-Hostname".into(), "fs.test".into()),
        ("Event-Date-Local".into(), "2023-11-14 22:13:20".into()),
        ("Event-Date-Timestamp".into(), at_us.to_string()),
        (
            "Event-Calling-Function".into(),
            "switch_channel_perform_mark_answered".into(),
        ),
        (
            "Unique-ID".into(),
            o.vars
                .get("origination_uuid")
                .cloned()
                .unwrap_or_else(|| uuid(9)),
        ),
        (
            "Caller-Caller-ID-Number".into(),
            o.vars
                .get("origination_caller_id_number")
                .cloned()
                .unwrap_or_default(),
        ),
        ("Caller-Destination-Number".into(), o.destination.clone()),
        ("Channel-Name".into(), o.dial_string.clone()),
    ];
    for (k, v) in &o.vars {
        h.push((format!("variable_{k}"), v.clone()));
    }
    h
}

fn job_event(o: &Originate, at_us: u64, result: &str) -> Vec<u8> {
    let headers = vec![
        ("Event-Name".to_string(), "BACKGROUND_JOB".to_string()),
        (
            "Core-UUID".into(),
            "6d4c3b2a-0000-4000-8000-000000000001".into(),
        ),
        ("Event-Date-Timestamp".into(), at_us.to_string()),
        ("Job-UUID".into(), o.job_uuid.clone()),
        ("Job-Command".into(), "originate".into()),
        (
            "Job-Command-Arg".into(),
            o.line.trim_start_matches("bgapi originate ").to_string(),
        ),
    ];
    event_frame(&headers, &format!("{result}\n"))
}

/// Times of one call, in microseconds (0: did not happen).
struct Times {
    start: u64,
    progress: u64,
    answer: u64,
    end: u64,
}

fn hangup_event(o: &Originate, cause: &str, t: &Times) -> Vec<u8> {
    let mut h = channel_headers("CHANNEL_HANGUP_COMPLETE", t.end, o);
    let secs = |from: u64, to: u64| {
        if from == 0 || to == 0 {
            0
        } else {
            (to - from) / SEC
        }
    };
    let vars = [
        ("Hangup-Cause", cause.to_string()),
        ("Caller-Channel-Created-Time", t.start.to_string()),
        ("Caller-Channel-Answered-Time", t.answer.to_string()),
        ("Caller-Channel-Hangup-Time", t.end.to_string()),
        ("variable_hangup_cause", cause.to_string()),
        ("variable_start_uepoch", t.start.to_string()),
        ("variable_progress_uepoch", t.progress.to_string()),
        ("variable_answer_uepoch", t.answer.to_string()),
        ("variable_end_uepoch", t.end.to_string()),
        (
            "variable_progresssec",
            secs(t.start, t.progress).to_string(),
        ),
        ("variable_answersec", secs(t.start, t.answer).to_string()),
        ("variable_billsec", secs(t.answer, t.end).to_string()),
        ("variable_duration", secs(t.start, t.end).to_string()),
    ];
    h.extend(vars.into_iter().map(|(k, v)| (k.to_string(), v)));
    event_frame(&h, "")
}

async fn play(shared: Arc<Shared>, o: Originate, outcome: Outcome) {
    let step = Duration::from_millis(shared.step_ms.load(Ordering::SeqCst));
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let progress = start + SEC;
    let answered = |ring_secs: u64, talk_secs: u64, cause: String| {
        let answer = progress + ring_secs * SEC;
        let times = Times {
            start,
            progress,
            answer,
            end: answer + talk_secs * SEC,
        };
        (times, cause)
    };
    tokio::time::sleep(step).await;
    let (times, cause) = match outcome {
        Outcome::Busy => {
            broadcast(&shared, job_event(&o, progress, "-ERR USER_BUSY"));
            return;
        }
        Outcome::NoAnswer { ring_secs } => {
            let times = Times {
                start,
                progress,
                answer: 0,
                end: progress + ring_secs * SEC,
            };
            broadcast(&shared, hangup_event(&o, "NO_ANSWER", &times));
            tokio::time::sleep(step).await;
            broadcast(&shared, job_event(&o, times.end, "-ERR NO_ANSWER"));
            return;
        }
        Outcome::Silent | Outcome::Refuse(_) => return,
        Outcome::Answer { ring_secs, billsec } => {
            answered(ring_secs, billsec, "NORMAL_CLEARING".into())
        }
        Outcome::FailAfterAnswer {
            ring_secs,
            after_secs,
            cause,
        } => answered(ring_secs, after_secs, cause),
    };
    let mut answer = channel_headers("CHANNEL_ANSWER", times.answer, &o);
    answer.push(("Answer-State".into(), "answered".into()));
    broadcast(&shared, event_frame(&answer, ""));
    broadcast(
        &shared,
        job_event(&o, times.answer, &format!("+OK {}", uuid(3))),
    );
    tokio::time::sleep(step).await;
    broadcast(&shared, hangup_event(&o, &cause, &times));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_like_freeswitch() {
        assert_eq!(
            split_args(r"{a=1,b='x y'}sofia/gw/919 '&speak(flite|kal|it\'s, fine)'"),
            vec!["{a=1,b=x y}sofia/gw/919", "&speak(flite|kal|it's, fine)"]
        );
        let o = parse_originate(
            "bgapi originate {rackwave_call_id=c1,origination_uuid=u}sofia/gateway/carrier/919812345678 &park()",
            "{rackwave_call_id=c1,origination_uuid=u}sofia/gateway/carrier/919812345678 &park()",
            "j",
        )
        .unwrap();
        assert_eq!(o.vars["rackwave_call_id"], "c1");
        assert_eq!(o.destination, "919812345678");
        assert_eq!(o.app, "&park()");
    }
}
