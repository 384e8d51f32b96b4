//! The bench's DNS server: a small authoritative server over real UDP and
//! TCP, serving a zone written in a BIND-like subset.
//!
//! Two users need an MTA to find its destination through DNS rather than
//! through a relay setting:
//!
//! - `rackwave bench e2e --dns-listen` and `rackwave bench sink
//!   --dns-listen`, so that the MTA under test resolves MX and A records of
//!   every destination domain ([`mx_zone`]) and reaches the sink the way it
//!   reaches a remote MX in production, lookups and per-domain queues
//!   included;
//! - the delivery-engine tests (through `rackwave_testkit::dns`), where the
//!   zone also plays Null MX, CNAME chains, DKIM keys and changes at run
//!   time.
//!
//! Zone text:
//!
//! - `$ORIGIN name.` and `$TTL seconds` directives;
//! - comments from `;` to the end of the line (outside quotes);
//! - records `name [ttl] [IN] TYPE data`, TYPE one of A, AAAA, MX
//!   (`pref host`), TXT (one or more strings, quoted or not, concatenated
//!   and split again into 255-byte character-strings, so long DKIM keys
//!   work) and CNAME; a line starting with blanks reuses the previous owner;
//!   parentheses continue a record over several lines;
//! - names are relative to `$ORIGIN` unless they end with a dot; `@` is the
//!   origin; `.` is the root (Null MX: `MX 0 .`).
//!
//! Placeholders such as `{SINK1}` are replaced by the `substitutions`
//! before parsing (also in [`DnsServer::set_zone`] and
//! [`DnsServer::add_record`]). A record still holding a `{PLACEHOLDER}`
//! afterwards is skipped, so one fixture serves tests that leave some
//! placeholders unfilled (e.g. the DKIM record).
//!
//! Answers are authoritative: NXDOMAIN for names with no records at or below
//! them, NOERROR with no answer (and a SOA in the authority section, its
//! TTL the negative-caching time of [`DnsServer::set_negative_ttl`], 0
//! unless set) for existing names without the type, CNAMEs followed within
//! the zone, the A/AAAA of MX exchanges in the additional section. Over UDP
//! an answer larger than the client's payload size (512 without EDNS) is
//! sent with TC set, so the client retries over TCP.
//!
//! Lookups scan the zone linearly: a bench zone of a few thousand records
//! answers in microseconds, and the MTA under test caches what it gets.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// TTL of records without one and without `$TTL`: short, so that a zone
/// changed at run time is seen quickly.
const DEFAULT_TTL: u32 = 1;

/// A running DNS server; dropping it stops it.
pub struct DnsServer {
    /// UDP and TCP, same address and port.
    pub addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

struct State {
    zone: Mutex<Zone>,
    substitutions: Vec<(String, String)>,
    queries: AtomicUsize,
    log: Mutex<Vec<(String, RecordType)>>,
    /// See [`DnsServer::set_negative_ttl`].
    negative_ttl: AtomicU32,
}

#[derive(Clone)]
struct Zone {
    /// The first `$ORIGIN`: owner of the SOA in negative answers.
    apex: Name,
    /// The current `$ORIGIN`, for [`DnsServer::add_record`].
    origin: Name,
    ttl: u32,
    /// Owner of the previous record, for lines starting with blanks.
    last_owner: Option<Name>,
    records: Vec<Record>,
}

impl Zone {
    fn empty() -> Zone {
        Zone {
            apex: Name::root(),
            origin: Name::root(),
            ttl: DEFAULT_TTL,
            last_owner: None,
            records: Vec::new(),
        }
    }
}

impl DnsServer {
    /// Serves `zone_text` (placeholders replaced) on `addr`, UDP and TCP on
    /// the same port; port 0 picks a port free for both (see
    /// [`DnsServer::addr`]). Fails on a zone syntax error or when the
    /// address is taken.
    pub async fn bind(
        addr: SocketAddr,
        zone_text: &str,
        substitutions: &[(&str, &str)],
    ) -> io::Result<DnsServer> {
        let substitutions: Vec<(String, String)> = substitutions
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut zone = Zone::empty();
        parse_into(&mut zone, &substitute(zone_text, &substitutions), true)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zone: {e}")))?;
        let state = Arc::new(State {
            zone: Mutex::new(zone),
            substitutions,
            queries: AtomicUsize::new(0),
            negative_ttl: AtomicU32::new(0),
            log: Mutex::new(Vec::new()),
        });
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let tasks = vec![
            tokio::spawn(serve_udp(udp, state.clone())),
            tokio::spawn(serve_tcp(tcp, state.clone())),
        ];
        Ok(DnsServer { addr, state, tasks })
    }
}

/// UDP then TCP on the same port. With port 0 the port is whatever UDP got,
/// so TCP may find it taken: try again with another.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        return Ok((udp, tcp));
    }
    let mut last_err = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

/// TTL of the bench zone's answers, positive and negative: a real zone's
/// (commonly 300 s to an hour), so that the MTA under test resolves each
/// name about once a run, not on every connection as a TTL of 0 would make
/// it.
pub const BENCH_TTL: u32 = 300;

/// A zone where every domain of `domains` has `MX 10 mx.<domain>` and
/// `mx.<domain>` has the address `mx_ip` (A or AAAA): an MTA resolving any
/// of them reaches `mx_ip` on its configured SMTP port.
pub fn mx_zone<S: AsRef<str>>(domains: &[S], mx_ip: IpAddr) -> String {
    let rtype = if mx_ip.is_ipv4() { "A" } else { "AAAA" };
    let domains: Vec<&str> = domains
        .iter()
        .map(|d| d.as_ref().trim_end_matches('.'))
        .collect();
    // The apex names the SOA of negative answers: the domains' common
    // parent, so that it encloses every name asked about.
    let mut zone = format!("$TTL {BENCH_TTL}\n$ORIGIN {}.\n", common_parent(&domains));
    for d in domains {
        zone.push_str(&format!(
            "{d}. IN MX 10 mx.{d}.\nmx.{d}. IN {rtype} {mx_ip}\n"
        ));
    }
    zone
}

/// The longest run of trailing labels all `domains` share (empty: the
/// root).
fn common_parent<'a>(domains: &[&'a str]) -> &'a str {
    let Some(first) = domains.first() else {
        return "";
    };
    let mut parent: &str = first;
    for d in &domains[1..] {
        while !(parent.is_empty()
            || d.eq_ignore_ascii_case(parent)
            || (d.len() > parent.len()
                && d.as_bytes()[d.len() - parent.len() - 1] == b'.'
                && d[d.len() - parent.len()..].eq_ignore_ascii_case(parent)))
        {
            parent = parent.split_once('.').map_or("", |(_, rest)| rest);
        }
    }
    parent
}

/// Serves [`mx_zone`] on `listen` for `domains`, pointing at the sink
/// listening on `sink`, negative answers cached for [`BENCH_TTL`] too. A
/// sink on the unspecified address (`0.0.0.0`) is reached through
/// loopback, so the A record names that.
pub async fn serve_mx(
    listen: SocketAddr,
    domains: &[String],
    sink: SocketAddr,
) -> io::Result<DnsServer> {
    let ip = match sink.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let server = DnsServer::bind(listen, &mx_zone(domains, ip), &[]).await?;
    server.set_negative_ttl(BENCH_TTL);
    Ok(server)
}

impl DnsServer {
    /// Replaces the whole zone (placeholders substituted). Panics on a
    /// syntax error.
    pub fn set_zone(&self, text: &str) {
        let mut zone = Zone::empty();
        parse_into(
            &mut zone,
            &substitute(text, &self.state.substitutions),
            true,
        )
        .unwrap_or_else(|e| panic!("zone: {e}"));
        *self.state.zone.lock().unwrap() = zone;
    }

    /// Adds records (one or more lines of zone text, relative to the
    /// current `$ORIGIN`). Panics on a syntax error.
    pub fn add_record(&self, line: &str) {
        let text = substitute(line, &self.state.substitutions);
        let mut zone = self.state.zone.lock().unwrap();
        zone.last_owner = None;
        parse_into(&mut zone, &text, false).unwrap_or_else(|e| panic!("zone: {e}"));
    }

    /// Removes the records of `rtype` at `name` (relative to the current
    /// `$ORIGIN` unless it ends with a dot); returns how many.
    pub fn remove_records(&self, name: &str, rtype: RecordType) -> usize {
        let mut zone = self.state.zone.lock().unwrap();
        let owner = parse_name(name, &zone.origin).unwrap_or_else(|e| panic!("{e}"));
        let before = zone.records.len();
        zone.records
            .retain(|r| !(r.name == owner && r.record_type() == rtype));
        before - zone.records.len()
    }

    /// How long resolvers may cache a negative answer (NXDOMAIN, or a name
    /// without the type asked: the SOA's TTL and minimum, RFC 2308 §5).
    /// 0 by default, so that a record a test adds is seen at once; the
    /// bench's zone uses [`BENCH_TTL`] like a real zone, else a resolver
    /// would ask again, on every connection, for the AAAA the MX host does
    /// not have.
    pub fn set_negative_ttl(&self, secs: u32) {
        self.state.negative_ttl.store(secs, Ordering::Relaxed);
    }

    /// Queries answered so far (UDP and TCP).
    pub fn queries(&self) -> usize {
        self.state.queries.load(Ordering::SeqCst)
    }

    /// The questions asked so far: lower-case name (with the final dot) and
    /// type.
    pub fn query_log(&self) -> Vec<(String, RecordType)> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn substitute(text: &str, substitutions: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (from, to) in substitutions {
        text = text.replace(from.as_str(), to);
    }
    text
}

/// Whether `s` still holds a `{PLACEHOLDER}` (upper case, digits, `_`).
fn has_placeholder(s: &str) -> bool {
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        if let Some(j) = rest.find('}') {
            let inner = &rest[..j];
            if !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------- parsing

enum Token {
    Word(String),
    Quoted(Vec<u8>),
}

/// Joins parenthesised continuations and drops comments: one entry per
/// record or directive, with its first line number and whether it started
/// with a blank.
fn logical_lines(text: &str) -> Result<Vec<(usize, String, bool)>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start_line = 0;
    let mut indented = false;
    let mut depth = 0usize;
    for (n, raw) in text.lines().enumerate() {
        if depth == 0 {
            current.clear();
            start_line = n + 1;
            indented = raw.starts_with([' ', '\t']);
        } else {
            current.push(' ');
        }
        let mut in_quote = false;
        let mut escaped = false;
        for c in raw.chars() {
            if in_quote {
                current.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_quote = false;
                }
                continue;
            }
            match c {
                ';' => break,
                '"' => {
                    in_quote = true;
                    current.push(c);
                }
                '(' => {
                    depth += 1;
                    current.push(' ');
                }
                ')' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| format!("line {}: unbalanced ')'", n + 1))?;
                    current.push(' ');
                }
                _ => current.push(c),
            }
        }
        if in_quote {
            return Err(format!("line {}: unterminated quote", n + 1));
        }
        if depth == 0 && !current.trim().is_empty() {
            out.push((start_line, current.clone(), indented));
        }
    }
    if depth != 0 {
        return Err(format!("line {start_line}: unbalanced '('"));
    }
    Ok(out)
}

fn tokens(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut bytes = Vec::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote".into()),
                    Some('"') => break,
                    Some('\\') => {
                        let e = chars.next().ok_or("dangling backslash")?;
                        if e.is_ascii_digit() {
                            // \DDD: a decimal byte.
                            let d2 = chars.next().ok_or("bad \\DDD escape")?;
                            let d3 = chars.next().ok_or("bad \\DDD escape")?;
                            let v: u8 = format!("{e}{d2}{d3}")
                                .parse()
                                .map_err(|_| "bad \\DDD escape")?;
                            bytes.push(v);
                        } else {
                            let mut b = [0u8; 4];
                            bytes.extend_from_slice(e.encode_utf8(&mut b).as_bytes());
                        }
                    }
                    Some(ch) => {
                        let mut b = [0u8; 4];
                        bytes.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
            out.push(Token::Quoted(bytes));
        } else {
            let mut word = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '"' {
                    break;
                }
                word.push(ch);
                chars.next();
            }
            out.push(Token::Word(word));
        }
    }
    Ok(out)
}

fn parse_name(s: &str, origin: &Name) -> Result<Name, String> {
    let name = if s == "@" {
        origin.clone()
    } else if s == "." {
        Name::root()
    } else if s.ends_with('.') {
        Name::from_ascii(s).map_err(|e| format!("bad name {s:?}: {e}"))?
    } else {
        Name::from_ascii(s)
            .and_then(|n| n.append_name(origin))
            .map_err(|e| format!("bad name {s:?}: {e}"))?
    };
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    Ok(name)
}

/// Parses zone text into `zone`. With `whole_zone`, the first `$ORIGIN`
/// becomes the apex (not for lines added later).
fn parse_into(zone: &mut Zone, text: &str, whole_zone: bool) -> Result<(), String> {
    let mut apex_set = !whole_zone;
    for (n, line, indented) in logical_lines(text)? {
        let err = |e: String| format!("line {n}: {e}: {}", line.trim());
        let toks = tokens(&line).map_err(&err)?;
        let word = |i: usize| -> Result<&str, String> {
            match toks.get(i) {
                Some(Token::Word(w)) => Ok(w.as_str()),
                Some(Token::Quoted(_)) => {
                    Err(format!("unexpected quoted string at field {}", i + 1))
                }
                None => Err("missing field".into()),
            }
        };
        let first = word(0).map_err(&err)?;
        if first.eq_ignore_ascii_case("$ORIGIN") {
            let origin = parse_name(word(1).map_err(&err)?, &Name::root()).map_err(&err)?;
            if !apex_set {
                zone.apex = origin.clone();
                apex_set = true;
            }
            zone.origin = origin;
            continue;
        }
        if first.eq_ignore_ascii_case("$TTL") {
            zone.ttl = word(1)
                .map_err(&err)?
                .parse()
                .map_err(|_| err("bad $TTL".into()))?;
            continue;
        }
        if has_placeholder(&line) {
            eprintln!(
                "DNS: skipping a record with an unfilled placeholder: {}",
                line.trim()
            );
            continue;
        }
        let mut i = 0;
        let owner = if indented {
            zone.last_owner
                .clone()
                .ok_or_else(|| err("no previous owner".into()))?
        } else {
            i = 1;
            parse_name(first, &zone.origin).map_err(&err)?
        };
        let mut ttl = zone.ttl;
        let rtype = loop {
            let w = word(i).map_err(&err)?;
            i += 1;
            if let Ok(t) = w.parse::<u32>() {
                ttl = t;
            } else if w.eq_ignore_ascii_case("IN") {
                continue;
            } else {
                break w.to_ascii_uppercase();
            }
        };
        let rdata = match rtype.as_str() {
            "A" => {
                let ip: Ipv4Addr = word(i)
                    .map_err(&err)?
                    .parse()
                    .map_err(|e| err(format!("bad IPv4 address: {e}")))?;
                RData::A(A(ip))
            }
            "AAAA" => {
                let ip = word(i)
                    .map_err(&err)?
                    .parse()
                    .map_err(|e| err(format!("bad IPv6 address: {e}")))?;
                RData::AAAA(AAAA(ip))
            }
            "MX" => {
                let pref: u16 = word(i)
                    .map_err(&err)?
                    .parse()
                    .map_err(|_| err("bad MX preference".into()))?;
                let host = parse_name(word(i + 1).map_err(&err)?, &zone.origin).map_err(&err)?;
                RData::MX(MX::new(pref, host))
            }
            "CNAME" => {
                let target = parse_name(word(i).map_err(&err)?, &zone.origin).map_err(&err)?;
                RData::CNAME(CNAME(target))
            }
            "TXT" => {
                let mut data = Vec::new();
                for t in &toks[i..] {
                    match t {
                        Token::Quoted(b) => data.extend_from_slice(b),
                        Token::Word(w) => data.extend_from_slice(w.as_bytes()),
                    }
                }
                if toks.len() <= i {
                    return Err(err("TXT without data".into()));
                }
                RData::TXT(txt(&data))
            }
            other => return Err(err(format!("unsupported record type {other}"))),
        };
        zone.last_owner = Some(owner.clone());
        zone.records.push(Record::from_rdata(owner, ttl, rdata));
    }
    Ok(())
}

/// A TXT record holding `data`, split into 255-byte character-strings.
fn txt(data: &[u8]) -> TXT {
    if data.is_empty() {
        return TXT::from_bytes(vec![&b""[..]]);
    }
    TXT::from_bytes(data.chunks(255).collect())
}

// --------------------------------------------------------------- answering

fn answer(state: &State, request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.authoritative = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        response.set_edns(edns);
    }
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response;
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let qtype = query.query_type();
    state.queries.fetch_add(1, Ordering::SeqCst);
    state
        .log
        .lock()
        .unwrap()
        .push((query.name().to_lowercase().to_ascii(), qtype));

    let zone = state.zone.lock().unwrap();
    let mut name = query.name().to_lowercase();
    name.set_fqdn(true);
    let mut exists = true;
    for _ in 0..8 {
        let here: Vec<&Record> = zone.records.iter().filter(|r| r.name == name).collect();
        if here.is_empty() {
            exists = zone.records.iter().any(|r| name.zone_of(&r.name));
            break;
        }
        let matching: Vec<&Record> = here
            .iter()
            .copied()
            .filter(|r| r.record_type() == qtype || qtype == RecordType::ANY)
            .collect();
        if !matching.is_empty() {
            response.add_answers(matching.into_iter().cloned());
            break;
        }
        match here.iter().find(|r| r.record_type() == RecordType::CNAME) {
            Some(cname) => {
                response.add_answer((*cname).clone());
                let RData::CNAME(CNAME(target)) = &cname.data else {
                    unreachable!()
                };
                name = target.clone();
            }
            None => break,
        }
    }
    // The owner of the question as asked (case included).
    for r in response.answers.iter_mut() {
        if r.name == *query.name() {
            r.name = query.name().clone();
        }
    }
    // Addresses of MX exchanges.
    let mut additionals = Vec::new();
    for r in &response.answers {
        if let RData::MX(mx) = &r.data {
            additionals.extend(
                zone.records
                    .iter()
                    .filter(|a| {
                        a.name == mx.exchange
                            && matches!(a.record_type(), RecordType::A | RecordType::AAAA)
                    })
                    .cloned(),
            );
        }
    }
    response.add_additionals(additionals);
    if response.answers.is_empty() {
        if !exists {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        let ns = Name::from_ascii("ns")
            .unwrap()
            .append_name(&zone.apex)
            .unwrap();
        let hostmaster = Name::from_ascii("hostmaster")
            .unwrap()
            .append_name(&zone.apex)
            .unwrap();
        let negative_ttl = state.negative_ttl.load(Ordering::Relaxed);
        let soa = SOA::new(ns, hostmaster, 1, 3600, 600, 86400, negative_ttl);
        response.add_authority(Record::from_rdata(
            zone.apex.clone(),
            negative_ttl,
            RData::SOA(soa),
        ));
    }
    response
}

/// The answer to a wire-format query, or `None` for garbage. Over UDP the
/// answer is cut to the client's payload size.
fn respond(state: &State, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
    let request = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) if bytes.len() >= 2 => {
            let id = u16::from_be_bytes([bytes[0], bytes[1]]);
            let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
            return m.to_vec().ok();
        }
        Err(_) => return None,
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = answer(state, &request);
    if !udp {
        return response.to_vec().ok();
    }
    let limit = request
        .edns
        .as_ref()
        .map_or(512, |e| usize::from(e.max_payload()).max(512));
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    // Additional records are optional: drop them first.
    response.additionals.clear();
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

async fn serve_udp(socket: UdpSocket, state: Arc<State>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = respond(&state, &buf[..n], true) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<State>) {
    // Connections live in the set: aborting this task aborts them.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_tcp_connection(stream, state.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, state: Arc<State>) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let Some(reply) = respond(&state, &msg, false) else {
            return;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = reply_len.to_be_bytes().to_vec();
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::common_parent;

    #[test]
    fn the_apex_is_the_common_parent_of_the_domains() {
        assert_eq!(common_parent(&["sink.test"]), "sink.test");
        assert_eq!(
            common_parent(&["d0.sink.test", "d1.sink.test", "d10.sink.test"]),
            "sink.test"
        );
        assert_eq!(common_parent(&["a.example", "b.test"]), "");
        // Labels, not characters.
        assert_eq!(common_parent(&["xsink.test", "sink.test"]), "test");
        assert_eq!(common_parent(&["sink.test", "xsink.test"]), "test");
        assert_eq!(common_parent(&[]), "");
    }
}
