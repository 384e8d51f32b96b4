//! The event socket's wire format and what its events mean for our calls,
//! without I/O: framing ([`Framer`]), event bodies ([`Event`]), the
//! `bgapi originate` line ([`originate_command`]) and the events-to-reports
//! rules ([`Calls`]).
//!
//! ESL frames are mail-like header blocks ended by an empty line; a
//! `Content-Length` header announces a body of that many bytes. Events
//! (`text/event-plain`) carry in their body another header block whose
//! values are URL-encoded, and possibly a body of their own
//! (`BACKGROUND_JOB`'s result).

use std::collections::{HashMap, HashSet, VecDeque};

use super::super::{CallEvent, CallReport, OutboundCall, Report, SendError};

/// A header block longer than this is not FreeSWITCH talking.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Events with every channel variable stay far below this.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One frame: its (outer, not encoded) headers and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Frame {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub(super) fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A stream that cannot be framed any more: the connection must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FrameError(pub(super) String);

/// Cuts the byte stream into frames.
#[derive(Debug, Default)]
pub(super) struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until one is complete.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Empty lines between frames carry nothing.
        let skip = self
            .buf
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        self.buf.drain(..skip);
        let Some(end) = header_end(&self.buf) else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(FrameError("header block too long".into()));
            }
            return Ok(None);
        };
        let (head_len, block_len) = end;
        let headers = parse_headers(&self.buf[..head_len], false);
        let body_len = match header(&headers, "Content-Length") {
            None => 0,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY_BYTES => n,
                // Where the next frame starts is unknowable now.
                _ => return Err(FrameError(format!("bad Content-Length {v:?}"))),
            },
        };
        if self.buf.len() < block_len + body_len {
            return Ok(None);
        }
        let body = self.buf[block_len..block_len + body_len].to_vec();
        self.buf.drain(..block_len + body_len);
        Ok(Some(Frame { headers, body }))
    }
}

/// Where a header block ends: the length of its lines and of the block
/// with its empty line. Lines end in `\n`, `\r\n` tolerated.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    while let Some(nl) = buf[line_start..].iter().position(|b| *b == b'\n') {
        let line = &buf[line_start..line_start + nl];
        if line.is_empty() || line == b"\r" {
            return Some((line_start, line_start + nl + 1));
        }
        line_start += nl + 1;
    }
    None
}

/// `Name: value` lines; lines without a colon are skipped. Values are
/// URL-decoded when `encoded` (inside events).
fn parse_headers(block: &[u8], encoded: bool) -> Vec<(String, String)> {
    String::from_utf8_lossy(block)
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            let v = v.trim();
            Some((
                k.to_string(),
                if encoded {
                    url_decode(v)
                } else {
                    v.to_string()
                },
            ))
        })
        .collect()
}

/// `%XX` decoding; a `%` not followed by two hex digits stays as it is.
pub(super) fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An event: its decoded headers and its own body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Event {
    pub(super) headers: HashMap<String, String>,
    pub(super) body: String,
}

impl Event {
    /// An event from the body of a `text/event-plain` frame.
    pub(super) fn parse(text: &[u8]) -> Result<Event, String> {
        let (head, rest) = match header_end(text) {
            Some((head_len, block_len)) => (&text[..head_len], &text[block_len..]),
            None => (text, &[][..]),
        };
        let headers: HashMap<String, String> = parse_headers(head, true).into_iter().collect();
        if headers.get("Event-Name").is_none_or(|n| n.is_empty()) {
            return Err("event without Event-Name".into());
        }
        let body = match headers.get("Content-Length") {
            None => String::new(),
            Some(v) => {
                let n = v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("event with Content-Length {v:?}"))?;
                String::from_utf8_lossy(&rest[..n.min(rest.len())]).into_owned()
            }
        };
        Ok(Event { headers, body })
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(super) fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or("")
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name)?.trim().parse().ok()
    }

    /// A time in microseconds, where 0 means "did not happen".
    fn micros(&self, name: &str) -> Option<u64> {
        self.number(name).filter(|t| *t > 0)
    }
}

/// What `dial` needs besides the call to build its command.
pub(super) struct DialPlan<'a> {
    pub(super) dial_string: &'a str,
    pub(super) tts_engine: &'a str,
    pub(super) tts_voice: &'a str,
    pub(super) recordings_dir: &'a str,
}

/// The channel variables we set, read back from events.
pub(super) const CALL_ID_VAR: &str = "rackwave_call_id";
const RECORD_VAR: &str = "rackwave_record";

/// Whether a value can go into the originate line as it is: no character
/// FreeSWITCH's argument and variable splitters treat specially (space,
/// quote, backslash, comma, braces, brackets, parentheses, `$`).
fn plain_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'\'' | b'"' | b'\\' | b',' | b'{' | b'}' | b'[' | b']' | b'(' | b')' | b'$'
                )
        })
}

fn refuse(code: &str, description: String) -> SendError {
    SendError::Permanent {
        code: code.into(),
        description,
    }
}

/// The digits of a number with an optional `+`.
fn number_digits(n: &str) -> Option<&str> {
    let d = n.strip_prefix('+').unwrap_or(n);
    (!d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

/// Text to speak, made safe for the originate line: FreeSWITCH splits
/// the line on spaces outside single quotes (so the application goes in
/// quotes, its quotes and backslashes escaped), ends the application's
/// argument at the first `)`, and expands `${…}` in it, which would let a
/// customer's text call any API. Parentheses become pauses (commas),
/// braces and line breaks go.
fn speakable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '(' | ')' => out.push(','),
            '{' | '}' => {}
            '\r' | '\n' | '\t' => out.push(' '),
            c if c.is_control() => {}
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out
}

/// The `bgapi originate` command for a call (ending with its empty line).
pub(super) fn originate_command(
    call: &OutboundCall,
    job_uuid: &str,
    channel_uuid: &str,
    plan: &DialPlan<'_>,
) -> Result<String, SendError> {
    if !plain_value(&call.call_id) || call.call_id.len() > 128 {
        return Err(refuse(
            "invalid_call_id",
            format!("call id {:?} cannot be a channel variable", call.call_id),
        ));
    }
    let to = number_digits(&call.to).ok_or_else(|| {
        refuse(
            "invalid_number",
            format!("{:?} is not a phone number", call.to),
        )
    })?;
    let mut vars = vec![
        format!("origination_uuid={channel_uuid}"),
        format!("{CALL_ID_VAR}={}", call.call_id),
    ];
    // An alphanumeric sender cannot be a caller id: the gateway's default
    // applies then.
    if let Some(from) = number_digits(&call.from) {
        vars.push(format!("origination_caller_id_number={from}"));
    }
    if call.record {
        vars.push(format!("{RECORD_VAR}=true"));
        // The quotes keep the space from splitting the line; the path is
        // checked plain by the config.
        vars.push(format!(
            "execute_on_answer='record_session {}/{}.wav'",
            plan.recordings_dir.trim_end_matches('/'),
            call.call_id
        ));
    }
    let app = match (&call.tts, &call.audio_url) {
        (Some(text), _) => format!(
            "'&speak({}|{}|{})'",
            plan.tts_engine,
            plan.tts_voice,
            speakable(text)
        ),
        (None, Some(url)) => {
            if !plain_value(url) {
                return Err(refuse(
                    "invalid_audio_url",
                    "audio_url has characters FreeSWITCH cannot take in a command".into(),
                ));
            }
            format!("&playback({url})")
        }
        // Nothing to say: answer and hang up when the far end does.
        (None, None) => "&park()".into(),
    };
    let dial = plan.dial_string.replace("{to}", to);
    Ok(format!(
        "bgapi originate {{{}}}{dial} {app}\nJob-UUID: {job_uuid}\n\n",
        vars.join(",")
    ))
}

/// How many calls we remember between their dial and their end. Calls whose
/// end was lost (a gap in the connection) would otherwise pile up.
const REMEMBERED: usize = 50_000;

/// A bounded set, oldest forgotten first.
#[derive(Debug, Default)]
struct Recent {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Recent {
    fn insert(&mut self, key: String) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            while self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }
}

/// Turns events into reports: which job is which call, and which calls
/// have had their final report.
///
/// A failed originate can produce both a `CHANNEL_HANGUP_COMPLETE` (the
/// channel existed and rang) and a `BACKGROUND_JOB` with `-ERR`, in either
/// order; the first one is the call's end, the second is dropped, so the
/// service sees one final report per call.
#[derive(Debug)]
pub(super) struct Calls {
    jobs: HashMap<String, String>,
    job_order: VecDeque<String>,
    finished: Recent,
    recording_url_base: String,
}

impl Calls {
    pub(super) fn new(recording_url_base: &str) -> Calls {
        Calls {
            jobs: HashMap::new(),
            job_order: VecDeque::new(),
            finished: Recent::default(),
            recording_url_base: recording_url_base.to_string(),
        }
    }

    /// A `bgapi` we sent for `call_id`.
    pub(super) fn job_started(&mut self, job_uuid: &str, call_id: &str) {
        self.jobs.insert(job_uuid.to_string(), call_id.to_string());
        self.job_order.push_back(job_uuid.to_string());
        while self.job_order.len() > REMEMBERED {
            if let Some(old) = self.job_order.pop_front() {
                self.jobs.remove(&old);
            }
        }
    }

    /// The report an event means, if it is about one of our calls.
    pub(super) fn on_event(&mut self, ev: &Event) -> Option<Report> {
        match ev.name() {
            "BACKGROUND_JOB" => self.on_job(ev),
            "CHANNEL_ANSWER" => {
                let call_id = ev.get(&format!("variable_{CALL_ID_VAR}"))?;
                let at_ms = event_ms(ev)?;
                Some(report(call_id, CallEvent::Answered { at_ms }))
            }
            "CHANNEL_HANGUP_COMPLETE" => {
                let call_id = ev.get(&format!("variable_{CALL_ID_VAR}"))?.to_string();
                if self.finished.contains(&call_id) {
                    return None;
                }
                let event = self.hangup(ev, &call_id)?;
                self.finished.insert(call_id.clone());
                Some(report(&call_id, event))
            }
            _ => None,
        }
    }

    fn on_job(&mut self, ev: &Event) -> Option<Report> {
        let job = ev.get("Job-UUID")?;
        // Ours by the job id we chose, or (a job from before a restart) by
        // the variable in the command it ran.
        let call_id = match self.jobs.remove(job) {
            Some(id) => id,
            None => call_id_in_command(ev.get("Job-Command-Arg")?)?,
        };
        let result = ev.body.trim();
        let cause = result.strip_prefix("-ERR")?.trim();
        if self.finished.contains(&call_id) {
            return None;
        }
        self.finished.insert(call_id.clone());
        let cause = cause
            .split_whitespace()
            .next()
            .unwrap_or("ORIGINATE_FAILED")
            .to_string();
        Some(report(&call_id, CallEvent::Failed { cause }))
    }

    fn hangup(&self, ev: &Event, call_id: &str) -> Option<CallEvent> {
        let cause = ev
            .get("Hangup-Cause")
            .or_else(|| ev.get("variable_hangup_cause"))
            .unwrap_or("UNSPECIFIED")
            .to_string();
        let created = ev
            .micros("variable_start_uepoch")
            .or_else(|| ev.micros("Caller-Channel-Created-Time"));
        let answered_at = ev
            .micros("variable_answer_uepoch")
            .or_else(|| ev.micros("Caller-Channel-Answered-Time"));
        let ended = ev
            .micros("variable_end_uepoch")
            .or_else(|| ev.micros("Caller-Channel-Hangup-Time"));
        let billsec = ev.number("variable_billsec").unwrap_or(0);
        let answered = answered_at.is_some()
            || billsec > 0
            || ev.number("variable_answersec").is_some_and(|s| s > 0);
        let ring_secs = ring_secs(ev, created, answered_at, ended, answered);
        let at_ms = ended
            .map(|us| (us / 1000) as i64)
            .or_else(|| event_ms(ev))?;
        let recording_url = (ev.get(&format!("variable_{RECORD_VAR}")) == Some("true")
            && !self.recording_url_base.is_empty())
        .then(|| format!("{}{call_id}.wav", self.recording_url_base));
        Some(CallEvent::Hangup {
            at_ms,
            cause,
            answered,
            billsec,
            ring_secs,
            recording_url,
        })
    }
}

/// How long it rang: from the first ring (progress) or, without one, from
/// the channel's creation, to the answer or, unanswered, the hangup. From
/// the microsecond times when the event has them, else from FreeSWITCH's
/// whole-second variables (`progresssec`, `answersec`, `duration`, all
/// counted from creation).
fn ring_secs(
    ev: &Event,
    created: Option<u64>,
    answered_at: Option<u64>,
    ended: Option<u64>,
    answered: bool,
) -> u64 {
    let progress = ev
        .micros("variable_progress_uepoch")
        .or_else(|| ev.micros("variable_progress_media_uepoch"));
    if let (Some(start), Some(stop)) = (progress.or(created), answered_at.or(ended)) {
        return stop.saturating_sub(start) / 1_000_000;
    }
    let progresssec = ev.number("variable_progresssec").unwrap_or(0);
    let until = if answered {
        ev.number("variable_answersec")
    } else {
        ev.number("variable_duration")
    };
    until.unwrap_or(0).saturating_sub(progresssec)
}

/// `Event-Date-Timestamp` (microseconds) in milliseconds.
fn event_ms(ev: &Event) -> Option<i64> {
    ev.micros("Event-Date-Timestamp")
        .map(|us| i64::try_from(us / 1000).unwrap_or(i64::MAX))
}

/// `rackwave_call_id=…` inside an originate's `{…}` variables.
fn call_id_in_command(arg: &str) -> Option<String> {
    let start = arg.find(&format!("{CALL_ID_VAR}="))? + CALL_ID_VAR.len() + 1;
    let id: String = arg[start..]
        .chars()
        .take_while(|c| !matches!(c, ',' | '}' | ' '))
        .collect();
    (!id.is_empty()).then_some(id)
}

fn report(call_id: &str, event: CallEvent) -> Report {
    Report::Call(CallReport {
        call_id: call_id.to_string(),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// A `text/event-plain` frame's bytes.
    fn event_frame(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
        let mut inner: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", encode(v)))
            .collect();
        if !body.is_empty() {
            inner.push_str(&format!("Content-Length: {}\n\n{body}", body.len()));
        } else {
            inner.push('\n');
        }
        format!(
            "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
            inner.len()
        )
        .into_bytes()
    }

    fn event(headers: &[(&str, &str)], body: &str) -> Event {
        let mut f = Framer::default();
        f.push(&event_frame(headers, body));
        Event::parse(&f.next_frame().unwrap().unwrap().body).unwrap()
    }

    fn call(record: bool) -> OutboundCall {
        OutboundCall {
            call_id: "call_1".into(),
            from: "+15550001111".into(),
            to: "+919812345678".into(),
            tts: Some("Hello, it's (really) ${system(rm)} me\nbye \\".into()),
            audio_url: None,
            record,
        }
    }

    const PLAN: DialPlan<'static> = DialPlan {
        dial_string: "sofia/gateway/carrier/{to}",
        tts_engine: "flite",
        tts_voice: "kal",
        recordings_dir: "/var/rec/",
    };

    #[test]
    fn frames_in_pieces_and_together() {
        let mut bytes = b"Content-Type: auth/request\n\n".to_vec();
        bytes.extend(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n");
        bytes.extend(event_frame(&[("Event-Name", "HEARTBEAT")], ""));
        // Byte by byte gives the same frames as all at once.
        let mut one = Framer::default();
        one.push(&bytes);
        let mut all = Vec::new();
        while let Some(f) = one.next_frame().unwrap() {
            all.push(f);
        }
        let mut split = Framer::default();
        let mut pieces = Vec::new();
        for b in &bytes {
            split.push(&[*b]);
            while let Some(f) = split.next_frame().unwrap() {
                pieces.push(f);
            }
        }
        assert_eq!(all, pieces);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].content_type(), "auth/request");
        assert_eq!(all[1].header("reply-text"), Some("+OK accepted"));
        assert_eq!(Event::parse(&all[2].body).unwrap().name(), "HEARTBEAT");
    }

    #[test]
    fn bad_framing_is_an_error_not_a_panic() {
        for bad in [
            &b"Content-Length: abc\n\n"[..],
            b"Content-Length: 99999999999\n\n",
            b"Content-Length: -1\n\n",
        ] {
            let mut f = Framer::default();
            f.push(bad);
            assert!(f.next_frame().is_err());
        }
        let mut f = Framer::default();
        f.push(&vec![b'x'; MAX_HEADER_BYTES + 1]);
        assert!(f.next_frame().is_err());
        // Garbage lines frame as a frame without a content type.
        let mut f = Framer::default();
        f.push(b"\r\n\nno colon here\n\xff\xfe: x\n\n");
        let frame = f.next_frame().unwrap().unwrap();
        assert_eq!(frame.content_type(), "");
    }

    #[test]
    fn events_decode() {
        assert_eq!(url_decode("a%20b%2Cc%zz%4"), "a b,c%zz%4");
        assert_eq!(url_decode("%"), "%");
        assert_eq!(url_decode("%E2%82%AC"), "€");
        assert!(Event::parse(b"").is_err());
        assert!(Event::parse(b"Foo: bar\n\n").is_err());
        assert!(Event::parse(b"\xff\xff\n\n").is_err());
        let ev = event(
            &[("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j")],
            "-ERR USER_BUSY\n",
        );
        assert_eq!(ev.body, "-ERR USER_BUSY\n");
        // A Content-Length longer than what is there takes what is there.
        let ev = Event::parse(b"Event-Name: X\nContent-Length: 50\n\nshort").unwrap();
        assert_eq!(ev.body, "short");
        assert!(Event::parse(b"Event-Name: X\nContent-Length: x\n\nshort").is_err());
    }

    #[test]
    fn originate_lines() {
        let cmd = originate_command(&call(true), "job-1", "chan-1", &PLAN).unwrap();
        assert_eq!(
            cmd,
            "bgapi originate {origination_uuid=chan-1,rackwave_call_id=call_1,\
             origination_caller_id_number=15550001111,rackwave_record=true,\
             execute_on_answer='record_session /var/rec/call_1.wav'}\
             sofia/gateway/carrier/919812345678 \
             '&speak(flite|kal|Hello, it\\'s ,really, $system,rm, me bye \\\\)'\
             \nJob-UUID: job-1\n\n"
        );
        let mut c = call(false);
        c.tts = None;
        c.audio_url = Some("https://cdn.example/a.mp3".into());
        c.from = "ACME".into();
        let cmd = originate_command(&c, "j", "u", &PLAN).unwrap();
        assert_eq!(
            cmd,
            "bgapi originate {origination_uuid=u,rackwave_call_id=call_1}\
             sofia/gateway/carrier/919812345678 &playback(https://cdn.example/a.mp3)\nJob-UUID: j\n\n"
        );
        for url in [
            "https://x/a b",
            "https://x/(a)",
            "https://x/${x}",
            "http://x/'",
            "",
        ] {
            c.audio_url = Some(url.into());
            assert!(matches!(
                originate_command(&c, "j", "u", &PLAN),
                Err(SendError::Permanent { .. })
            ));
        }
        let mut c = call(false);
        c.to = "+91 98".into();
        assert!(originate_command(&c, "j", "u", &PLAN).is_err());
        let mut c = call(false);
        c.call_id = "call,x=1".into();
        assert!(originate_command(&c, "j", "u", &PLAN).is_err());
    }

    const START: u64 = 1_700_000_000_000_000;

    fn hangup(cause: &str, vars: &[(&str, &str)]) -> Event {
        let mut h = vec![
            ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
            ("Hangup-Cause", cause),
            ("variable_rackwave_call_id", "call_1"),
        ];
        h.extend_from_slice(vars);
        event(&h, "")
    }

    #[test]
    fn answered_and_completed() {
        let mut calls = Calls::new("https://rec.example/");
        calls.job_started("job-1", "call_1");
        let answer = event(
            &[
                ("Event-Name", "CHANNEL_ANSWER"),
                ("Event-Date-Timestamp", "1700000004000000"),
                ("variable_rackwave_call_id", "call_1"),
            ],
            "",
        );
        assert_eq!(
            calls.on_event(&answer),
            Some(report(
                "call_1",
                CallEvent::Answered {
                    at_ms: 1_700_000_004_000
                }
            ))
        );
        let ok_job = event(
            &[("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "job-1")],
            "+OK chan-1\n",
        );
        assert_eq!(calls.on_event(&ok_job), None);
        let (s, p, a, e) = (
            START.to_string(),
            (START + 1_000_000).to_string(),
            (START + 4_000_000).to_string(),
            (START + 34_000_000).to_string(),
        );
        let ev = hangup(
            "NORMAL_CLEARING",
            &[
                ("variable_start_uepoch", &s),
                ("variable_progress_uepoch", &p),
                ("variable_answer_uepoch", &a),
                ("variable_end_uepoch", &e),
                ("variable_billsec", "30"),
                ("variable_rackwave_record", "true"),
            ],
        );
        assert_eq!(
            calls.on_event(&ev),
            Some(report(
                "call_1",
                CallEvent::Hangup {
                    at_ms: 1_700_000_034_000,
                    cause: "NORMAL_CLEARING".into(),
                    answered: true,
                    billsec: 30,
                    ring_secs: 3,
                    recording_url: Some("https://rec.example/call_1.wav".into()),
                }
            ))
        );
        // The same end again (a replayed event) is not reported twice.
        assert_eq!(calls.on_event(&ev), None);
    }

    #[test]
    fn no_answer_then_failed_job_is_one_end() {
        let mut calls = Calls::new("");
        calls.job_started("job-1", "call_1");
        let ev = hangup(
            "NO_ANSWER",
            &[
                ("Event-Date-Timestamp", "1700000030000000"),
                ("variable_progresssec", "2"),
                ("variable_duration", "30"),
                ("variable_answersec", "0"),
                ("variable_billsec", "0"),
                ("variable_rackwave_record", "true"),
            ],
        );
        assert_eq!(
            calls.on_event(&ev),
            Some(report(
                "call_1",
                CallEvent::Hangup {
                    at_ms: 1_700_000_030_000,
                    cause: "NO_ANSWER".into(),
                    answered: false,
                    billsec: 0,
                    ring_secs: 28,
                    recording_url: None,
                }
            ))
        );
        let job = event(
            &[("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "job-1")],
            "-ERR NO_ANSWER\n",
        );
        assert_eq!(calls.on_event(&job), None);
    }

    #[test]
    fn failed_originates() {
        let mut calls = Calls::new("");
        calls.job_started("job-1", "call_1");
        let job = event(
            &[("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "job-1")],
            "-ERR USER_BUSY\n",
        );
        assert_eq!(
            calls.on_event(&job),
            Some(report(
                "call_1",
                CallEvent::Failed {
                    cause: "USER_BUSY".into()
                }
            ))
        );
        // The channel's own end after that is not a second report.
        assert_eq!(
            calls.on_event(&hangup("USER_BUSY", &[("Event-Date-Timestamp", "1")])),
            None
        );
        // A job we did not send, recognised by its command.
        let job = event(
            &[
                ("Event-Name", "BACKGROUND_JOB"),
                ("Job-UUID", "other"),
                ("Job-Command", "originate"),
                (
                    "Job-Command-Arg",
                    "{origination_uuid=u,rackwave_call_id=call_9}sofia/x &park()",
                ),
            ],
            "-ERR",
        );
        assert_eq!(
            calls.on_event(&job),
            Some(report(
                "call_9",
                CallEvent::Failed {
                    cause: "ORIGINATE_FAILED".into()
                }
            ))
        );
        // Jobs that are not ours, or not failures, say nothing.
        let stranger = event(
            &[("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "x")],
            "-ERR NO_ROUTE\n",
        );
        assert_eq!(calls.on_event(&stranger), None);
    }

    #[test]
    fn events_not_ours_or_broken_are_ignored() {
        let mut calls = Calls::new("");
        let other = event(
            &[
                ("Event-Name", "CHANNEL_ANSWER"),
                ("Event-Date-Timestamp", "5"),
            ],
            "",
        );
        assert_eq!(calls.on_event(&other), None);
        let no_time = event(
            &[
                ("Event-Name", "CHANNEL_ANSWER"),
                ("variable_rackwave_call_id", "c"),
            ],
            "",
        );
        assert_eq!(calls.on_event(&no_time), None);
        let garbage = hangup(
            "NORMAL_CLEARING",
            &[("variable_billsec", "lots"), ("Event-Date-Timestamp", "x")],
        );
        assert_eq!(calls.on_event(&garbage), None);
        // From the headers FreeSWITCH always sends, without variables.
        let bare = hangup(
            "NORMAL_CLEARING",
            &[
                ("Caller-Channel-Created-Time", "1700000000000000"),
                ("Caller-Channel-Answered-Time", "1700000005000000"),
                ("Caller-Channel-Hangup-Time", "1700000009000000"),
            ],
        );
        match calls.on_event(&bare) {
            Some(Report::Call(CallReport {
                event:
                    CallEvent::Hangup {
                        answered,
                        ring_secs,
                        billsec,
                        ..
                    },
                ..
            })) => {
                assert!(answered);
                assert_eq!((ring_secs, billsec), (5, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut calls = Calls::new("");
        for i in 0..REMEMBERED + 10 {
            calls.job_started(&format!("j{i}"), "c");
        }
        assert_eq!(calls.jobs.len(), REMEMBERED);
        let mut r = Recent::default();
        for i in 0..REMEMBERED + 10 {
            r.insert(i.to_string());
        }
        assert_eq!(r.set.len(), REMEMBERED);
        assert!(!r.contains("0"));
    }
}
