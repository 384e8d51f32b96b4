//! A test SMSC: a real SMPP 3.4 server on a loopback port, playing the
//! carrier for the SMPP connector's tests and benchmark.
//!
//! It binds transceivers (a wrong system id or password gets
//! `ESME_RBINDFAIL` and the connection closed), answers each `submit_sm`
//! with a fresh message id written in **uppercase hex**, and then, when
//! the submit asked for one, sends a delivery receipt whose `id:` is the
//! same id in **decimal**, as many carriers do (hex, or TLVs instead of a
//! text, by option). The receipt's stat comes from a rule on the
//! destination number ([`default_stat`] unless the options say
//! otherwise). Knobs change its behaviour while it runs: throttle or
//! refuse the next submits, drop every connection, go silent, send
//! mobile-originated messages or raw bytes. It records what it received.
//!
//! Built on rusmpp's codec, as the connector is; nothing of the
//! connector's own code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rusmpp::pdus::{BindTransceiverResp, DeliverSm, SubmitSmResp};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, ErrorCodeNetworkType, EsmClass, MessageState, NetworkErrorCode, Npi, Ton,
};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Encoder, FramedRead};

/// The receipt's stat and err for a destination number.
pub type StatRule = Arc<dyn Fn(&str) -> (String, String) + Send + Sync>;

/// Numbers ending in 0 are undeliverable (`UNDELIV`, err `001`), numbers
/// ending in 9 expire (`EXPIRED`, `002`), the rest are delivered
/// (`DELIVRD`, `000`).
pub fn default_stat(destination: &str) -> (String, String) {
    let (stat, err) = match destination.chars().last() {
        Some('0') => ("UNDELIV", "001"),
        Some('9') => ("EXPIRED", "002"),
        _ => ("DELIVRD", "000"),
    };
    (stat.to_string(), err.to_string())
}

#[derive(Clone)]
pub struct SmscOptions {
    pub system_id: String,
    pub password: String,
    /// Send a receipt for submits that ask for one (registered_delivery
    /// bit 0).
    pub receipts: bool,
    /// How long after the `submit_sm_resp` the receipt goes.
    pub receipt_delay: Duration,
    /// Write the receipt's id in hex (as in the `submit_sm_resp`) rather
    /// than in decimal.
    pub receipt_id_hex: bool,
    /// Carry the receipt in TLVs (`receipted_message_id`,
    /// `message_state`, `network_error_code`) with an empty text.
    pub receipt_tlvs: bool,
    pub stat_rule: StatRule,
    /// The first message id handed out.
    pub first_message_id: u64,
}

impl Default for SmscOptions {
    fn default() -> Self {
        SmscOptions {
            system_id: "rackwave".into(),
            password: "secret".into(),
            receipts: true,
            receipt_delay: Duration::ZERO,
            receipt_id_hex: false,
            receipt_tlvs: false,
            stat_rule: Arc::new(default_stat),
            first_message_id: 0x1A2B3C,
        }
    }
}

/// One `submit_sm` as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSubmit {
    pub source: String,
    pub source_ton: u8,
    pub source_npi: u8,
    pub destination: String,
    pub dest_ton: u8,
    pub dest_npi: u8,
    pub data_coding: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub short_message: Vec<u8>,
    /// The client's sequence number.
    pub sequence: u32,
    /// The id we answered with; `None` when we answered with an error
    /// (or not at all).
    pub message_id: Option<String>,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// What a session writes.
enum Out {
    Command(Box<Command>),
    Raw(Vec<u8>),
    /// Flush and close after what came before.
    Close,
}

struct State {
    options: SmscOptions,
    password: Mutex<String>,
    next_id: AtomicU64,
    next_sequence: AtomicU32,
    throttle: AtomicUsize,
    queue_full: AtomicUsize,
    silent: AtomicBool,
    submits: Mutex<Vec<ReceivedSubmit>>,
    binds: AtomicUsize,
    refused_binds: AtomicUsize,
    receipts_sent: AtomicUsize,
    deliver_acks: AtomicUsize,
    deliver_refusals: AtomicUsize,
    nacks: AtomicUsize,
    next_session: AtomicU64,
    /// Bound sessions, by number: where MOs and raw bytes go.
    sessions: Mutex<HashMap<u64, mpsc::UnboundedSender<Out>>>,
    /// Bumped to drop every connection.
    kill: watch::Sender<u64>,
}

impl State {
    fn sequence(&self) -> u32 {
        self.next_sequence.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running test SMSC; dropping it closes everything.
pub struct Smsc {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Smsc {
    pub async fn start(options: SmscOptions) -> Smsc {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMSC");
        let addr = listener.local_addr().expect("SMSC address");
        let state = Arc::new(State {
            password: Mutex::new(options.password.clone()),
            next_id: AtomicU64::new(options.first_message_id),
            next_sequence: AtomicU32::new(1),
            throttle: AtomicUsize::new(0),
            queue_full: AtomicUsize::new(0),
            silent: AtomicBool::new(false),
            submits: Mutex::new(Vec::new()),
            binds: AtomicUsize::new(0),
            refused_binds: AtomicUsize::new(0),
            receipts_sent: AtomicUsize::new(0),
            deliver_acks: AtomicUsize::new(0),
            deliver_refusals: AtomicUsize::new(0),
            nacks: AtomicUsize::new(0),
            next_session: AtomicU64::new(1),
            sessions: Mutex::new(HashMap::new()),
            kill: watch::Sender::new(0),
            options,
        });
        let accepting = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(session(accepting.clone(), tcp));
            }
        });
        Smsc {
            addr,
            state,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The password binds must give from now on.
    pub fn set_password(&self, password: &str) {
        *self.state.password.lock().unwrap() = password.to_string();
    }

    /// Answer the next `n` submits with `ESME_RTHROTTLED`.
    pub fn throttle_next(&self, n: usize) {
        self.state.throttle.store(n, Ordering::SeqCst);
    }

    /// Answer the next `n` submits with `ESME_RMSGQFUL`.
    pub fn queue_full_next(&self, n: usize) {
        self.state.queue_full.store(n, Ordering::SeqCst);
    }

    /// Close every connection at once, without an unbind.
    pub fn drop_connections(&self) {
        self.state.kill.send_modify(|generation| *generation += 1);
    }

    /// Keep reading (and recording submits) but answer nothing, not even
    /// `enquire_link`.
    pub fn stop_answering(&self, silent: bool) {
        self.state.silent.store(silent, Ordering::SeqCst);
    }

    /// A mobile-originated message from `from` to `to` (E.164, `+`
    /// optional) to every bound session, in as many parts as it takes;
    /// the number of sessions it went to.
    pub fn send_mo(&self, from: &str, to: &str, text: &str) -> usize {
        let encoded = rackwave_sms::encode(text, 0x42);
        let several = encoded.parts.len() > 1;
        let sessions = self.state.sessions.lock().unwrap();
        for out in sessions.values() {
            for part in &encoded.parts {
                let mut deliver = DeliverSm::builder()
                    .source_addr_ton(Ton::International)
                    .source_addr_npi(Npi::Isdn)
                    .source_addr(address(from))
                    .dest_addr_ton(Ton::International)
                    .dest_addr_npi(Npi::Isdn)
                    .destination_addr(address(to))
                    .esm_class(EsmClass::from(if several { 0x40 } else { 0x00 }))
                    .data_coding(DataCoding::from(encoded.encoding.data_coding()))
                    .build();
                deliver.set_short_message(OctetString::from_slice(part).expect("a part fits"));
                let command = Command::new(CommandStatus::EsmeRok, self.state.sequence(), deliver);
                let _ = out.send(Out::Command(Box::new(command)));
            }
        }
        sessions.len()
    }

    /// Bytes as they are, to every bound session; the number of sessions
    /// they went to.
    pub fn send_raw(&self, bytes: &[u8]) -> usize {
        let sessions = self.state.sessions.lock().unwrap();
        for out in sessions.values() {
            let _ = out.send(Out::Raw(bytes.to_vec()));
        }
        sessions.len()
    }

    /// Every `submit_sm` received, in order.
    pub fn submits(&self) -> Vec<ReceivedSubmit> {
        self.state.submits.lock().unwrap().clone()
    }

    pub fn submit_count(&self) -> usize {
        self.state.submits.lock().unwrap().len()
    }

    /// Successful binds so far.
    pub fn binds(&self) -> usize {
        self.state.binds.load(Ordering::SeqCst)
    }

    pub fn refused_binds(&self) -> usize {
        self.state.refused_binds.load(Ordering::SeqCst)
    }

    /// Sessions bound now.
    pub fn sessions(&self) -> usize {
        self.state.sessions.lock().unwrap().len()
    }

    pub fn receipts_sent(&self) -> usize {
        self.state.receipts_sent.load(Ordering::SeqCst)
    }

    /// `deliver_sm_resp`s received, whatever their status.
    pub fn deliver_acks(&self) -> usize {
        self.state.deliver_acks.load(Ordering::SeqCst)
    }

    /// `deliver_sm_resp`s with an error status (the client asks for a
    /// redelivery, which this SMSC never makes).
    pub fn deliver_refusals(&self) -> usize {
        self.state.deliver_refusals.load(Ordering::SeqCst)
    }

    /// `generic_nack`s received.
    pub fn nacks(&self) -> usize {
        self.state.nacks.load(Ordering::SeqCst)
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

/// An address field: the number without `+`.
fn address(number: &str) -> COctetString<1, 21> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    COctetString::from_str(digits).expect("an address of at most 20 ASCII characters")
}

/// Writes what the session sends, batching what is already queued into
/// one write.
async fn writer(mut tcp: tokio::net::tcp::OwnedWriteHalf, mut out: mpsc::UnboundedReceiver<Out>) {
    let mut codec = CommandCodec::new();
    let mut buf = BytesMut::new();
    while let Some(first) = out.recv().await {
        let mut next = Some(first);
        let mut close = false;
        while let Some(item) = next.take() {
            match item {
                Out::Command(c) => {
                    let _ = codec.encode(*c, &mut buf);
                }
                Out::Raw(bytes) => buf.extend_from_slice(&bytes),
                Out::Close => {
                    close = true;
                    break;
                }
            }
            next = out.try_recv().ok();
        }
        if tcp.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
        if close {
            let _ = tcp.shutdown().await;
            return;
        }
    }
}

async fn session(state: Arc<State>, tcp: TcpStream) {
    let id = state.next_session.fetch_add(1, Ordering::Relaxed);
    let (read, write) = tcp.into_split();
    let mut reader = FramedRead::new(read, CommandCodec::new());
    let (out, queued) = mpsc::unbounded_channel();
    let mut writing = tokio::spawn(writer(write, queued));
    let mut kill = state.kill.subscribe();
    kill.borrow_and_update();
    let mut bound = false;
    let killed = loop {
        tokio::select! {
            _ = kill.changed() => break true,
            next = reader.next() => match next {
                Some(Ok(command)) => {
                    if !handle(&state, id, &out, &mut bound, command) {
                        break false;
                    }
                }
                // Closed, or bytes that are no PDU: hang up.
                _ => break false,
            },
        }
    };
    state.sessions.lock().unwrap().remove(&id);
    if killed {
        writing.abort();
    } else {
        let _ = out.send(Out::Close);
        if tokio::time::timeout(Duration::from_secs(1), &mut writing)
            .await
            .is_err()
        {
            writing.abort();
        }
    }
}

/// Serves one PDU; false to close the session.
fn handle(
    state: &Arc<State>,
    session: u64,
    out: &mpsc::UnboundedSender<Out>,
    bound: &mut bool,
    command: Command,
) -> bool {
    let sequence = command.sequence_number();
    let reply = |status: CommandStatus, pdu: Pdu| {
        let _ = out.send(Out::Command(Box::new(Command::new(status, sequence, pdu))));
    };
    let silent = state.silent.load(Ordering::SeqCst);
    match command.pdu() {
        Some(Pdu::BindTransceiver(bind)) => {
            if silent {
                return true;
            }
            let password = state.password.lock().unwrap().clone();
            let ok = bind.system_id.as_str() == state.options.system_id
                && bind.password.as_str() == password
                && !*bound;
            let resp = BindTransceiverResp::builder()
                .system_id(COctetString::from_str("testsmsc").expect("ascii"))
                .build();
            if !ok {
                state.refused_binds.fetch_add(1, Ordering::SeqCst);
                reply(CommandStatus::EsmeRbindfail, resp.into());
                return false;
            }
            *bound = true;
            state.binds.fetch_add(1, Ordering::SeqCst);
            state.sessions.lock().unwrap().insert(session, out.clone());
            reply(CommandStatus::EsmeRok, resp.into());
        }
        Some(Pdu::SubmitSm(submit)) => {
            let mut received = ReceivedSubmit {
                source: submit.source_addr.as_str().to_string(),
                source_ton: u8::from(submit.source_addr_ton),
                source_npi: u8::from(submit.source_addr_npi),
                destination: submit.destination_addr.as_str().to_string(),
                dest_ton: u8::from(submit.dest_addr_ton),
                dest_npi: u8::from(submit.dest_addr_npi),
                data_coding: u8::from(submit.data_coding),
                esm_class: u8::from(submit.esm_class),
                registered_delivery: u8::from(submit.registered_delivery),
                short_message: submit.short_message().as_ref().to_vec(),
                sequence,
                message_id: None,
                at: std::time::Instant::now(),
            };
            let take = |counter: &AtomicUsize| {
                counter
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            };
            let status = if silent {
                None
            } else if !*bound {
                Some(CommandStatus::EsmeRinvbndsts)
            } else if take(&state.throttle) {
                Some(CommandStatus::EsmeRthrottled)
            } else if take(&state.queue_full) {
                Some(CommandStatus::EsmeRmsgqful)
            } else {
                Some(CommandStatus::EsmeRok)
            };
            let accepted = status == Some(CommandStatus::EsmeRok);
            let number = state
                .next_id
                .fetch_add(u64::from(accepted), Ordering::SeqCst);
            if accepted {
                received.message_id = Some(format!("{number:X}"));
            }
            let receipt =
                (accepted && state.options.receipts && received.registered_delivery & 1 == 1)
                    .then(|| receipt(state, &received, number));
            let message_id = received.message_id.clone().unwrap_or_default();
            state.submits.lock().unwrap().push(received);
            if let Some(status) = status {
                let resp = SubmitSmResp::builder()
                    .message_id(COctetString::from_str(&message_id).expect("ascii"))
                    .build();
                reply(status, resp.into());
            }
            if let Some(receipt) = receipt {
                state.receipts_sent.fetch_add(1, Ordering::SeqCst);
                let delay = state.options.receipt_delay;
                if delay.is_zero() {
                    let _ = out.send(Out::Command(Box::new(receipt)));
                } else {
                    let out = out.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = out.send(Out::Command(Box::new(receipt)));
                    });
                }
            }
        }
        Some(Pdu::EnquireLink) => {
            if !silent {
                reply(CommandStatus::EsmeRok, Pdu::EnquireLinkResp);
            }
        }
        Some(Pdu::Unbind) => {
            if !silent {
                reply(CommandStatus::EsmeRok, Pdu::UnbindResp);
            }
            return false;
        }
        // A deliver_sm_resp may come without a body.
        Some(Pdu::DeliverSmResp(_)) | None if command.id() == CommandId::DeliverSmResp => {
            state.deliver_acks.fetch_add(1, Ordering::SeqCst);
            if command.status() != CommandStatus::EsmeRok {
                state.deliver_refusals.fetch_add(1, Ordering::SeqCst);
            }
        }
        Some(Pdu::GenericNack) => {
            state.nacks.fetch_add(1, Ordering::SeqCst);
        }
        Some(Pdu::EnquireLinkResp) | Some(Pdu::UnbindResp) => {}
        _ => {
            if !silent {
                reply(CommandStatus::EsmeRinvcmdid, Pdu::GenericNack);
            }
        }
    }
    true
}

/// The receipt `deliver_sm` for an accepted submit.
fn receipt(state: &State, submit: &ReceivedSubmit, number: u64) -> Command {
    let options = &state.options;
    let (stat, err) = (options.stat_rule)(&submit.destination);
    let id = if options.receipt_id_hex {
        format!("{number:X}")
    } else {
        number.to_string()
    };
    let mut deliver = DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(address(&submit.destination))
        .dest_addr_ton(Ton::from(submit.source_ton))
        .dest_addr_npi(Npi::from(submit.source_npi))
        .destination_addr(COctetString::from_str(&submit.source).expect("ascii"))
        .esm_class(EsmClass::from(0x04))
        .build();
    if options.receipt_tlvs {
        let state = match stat.as_str() {
            "ENROUTE" => 1,
            "DELIVRD" => 2,
            "EXPIRED" => 3,
            "DELETED" => 4,
            "UNDELIV" => 5,
            "ACCEPTD" => 6,
            "REJECTD" => 8,
            _ => 7,
        };
        deliver.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
            COctetString::from_str(&id).expect("ascii"),
        ));
        deliver.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
            MessageState::from(state),
        ));
        deliver.push_tlv(MessageDeliveryRequestTlvValue::NetworkErrorCode(
            NetworkErrorCode::new(ErrorCodeNetworkType::Gsm, err.parse().unwrap_or(0)),
        ));
    } else {
        let delivered = if stat == "DELIVRD" { "001" } else { "000" };
        let text: String = String::from_utf8_lossy(&submit.short_message)
            .chars()
            .filter(|c| !c.is_control())
            .take(20)
            .collect();
        let text = format!(
            "id:{id} sub:001 dlvrd:{delivered} submit date:2606070939 done date:2606070940 stat:{stat} err:{err} text:{text}"
        );
        deliver.set_short_message(OctetString::from_slice(text.as_bytes()).expect("a short text"));
    }
    Command::new(CommandStatus::EsmeRok, state.sequence(), deliver)
}
