//! The session task: connect, bind, serve the bind until it breaks, back
//! off, again. It owns the socket and the window of unanswered submits;
//! callers reach it only through the request channel, and every request
//! it takes is answered (by the SMSC, by a deadline, or by the loss of the
//! connection).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::frames::{Frames, Incoming};
use super::{receipt, status, Counters, Shared, Submit};
use crate::connectors::{Report, Reports, SendError};

type Link = Framed<TcpStream, Frames>;
type Writer = SplitSink<Link, Command>;

/// How often deadlines are looked at: the precision of every timeout.
const TICK: Duration = Duration::from_millis(100);
/// Reports waiting for the service before the session stops reading.
const REPORT_QUEUE: usize = 256;
/// The bind's sequence number; submits and the rest count from after it.
const BIND_SEQUENCE: u32 = 1;

/// Why a bound session ended.
enum End {
    /// Shutdown, or every connector clone dropped: do not reconnect.
    Stop,
    Lost(String),
}

pub(super) async fn run(
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<Submit>,
    reports: Reports,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let addr = format!("{}:{}", config.host, config.port);
    let min = Duration::from_millis(config.reconnect_min_ms);
    let max = Duration::from_millis(config.reconnect_max_ms).max(min);
    let mut backoff = min;
    loop {
        let attempt = tokio::select! {
            r = connect_and_bind(&shared) => r,
            () = refuse(&mut requests) => return,
            () = stopping(&mut shutdown) => return,
        };
        let wait = match attempt {
            Ok(link) => {
                info!(smsc = %addr, system_id = %config.system_id, "SMPP bound");
                Counters::add(&shared.counters.binds);
                shared.bound.send_replace(true);
                let end = serve(&shared, link, &mut requests, &reports, &mut shutdown).await;
                shared.bound.send_replace(false);
                match end {
                    End::Stop => return,
                    End::Lost(why) => warn!(smsc = %addr, "SMPP connection lost: {why}"),
                }
                // A link that was up starts the backoff afresh.
                backoff = min;
                min
            }
            Err(why) => {
                warn!(smsc = %addr, retry_in_ms = backoff.as_millis() as u64, "SMPP bind failed: {why}");
                let wait = backoff;
                backoff = (backoff * 2).min(max);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = refuse(&mut requests) => return,
            () = stopping(&mut shutdown) => return,
        }
    }
}

/// Answers every submit that arrives while there is no bind (callers
/// check first; this is the race where the bind fell in between), until
/// the last connector clone is dropped.
async fn refuse(requests: &mut mpsc::Receiver<Submit>) {
    while let Some(submit) = requests.recv().await {
        let _ = submit
            .reply
            .send(Err(SendError::Temporary("not bound".into())));
    }
}

/// Resolves once shutdown is asked for; never, if it cannot be any more.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A bind field; `SmppConfig::check` has bounded it already.
fn field<const MAX: usize>(s: &str) -> Result<COctetString<1, MAX>, String> {
    COctetString::from_str(s).map_err(|e| format!("bind field {s:?}: {e}"))
}

async fn connect_and_bind(shared: &Shared) -> Result<Link, String> {
    let config = &shared.config;
    let deadline = Instant::now() + config.response_timeout();
    let tcp = timeout_at(
        deadline,
        TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await
    .map_err(|_| "no connection in time".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut link = Framed::new(tcp, Frames::default());
    let bind = BindTransceiver::builder()
        .system_id(field(&config.system_id)?)
        .password(field(&config.password)?)
        .system_type(field(&config.system_type)?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build();
    timeout_at(
        deadline,
        link.send(Command::new(CommandStatus::EsmeRok, BIND_SEQUENCE, bind)),
    )
    .await
    .map_err(|_| "bind not written in time".to_string())?
    .map_err(|e| format!("write: {e}"))?;
    loop {
        let incoming = timeout_at(deadline, link.next())
            .await
            .map_err(|_| "no bind_transceiver_resp in time".to_string())?;
        let command = match incoming {
            None => return Err("connection closed before the bind was answered".into()),
            Some(Err(e)) => return Err(format!("read: {e}")),
            Some(Ok(Incoming::Malformed { error, .. })) => {
                return Err(format!("unreadable answer to the bind: {error}"))
            }
            Some(Ok(Incoming::Command(c))) => *c,
        };
        match command.id() {
            CommandId::BindTransceiverResp | CommandId::GenericNack => {
                let code = u32::from(command.status());
                if code == 0 && command.id() == CommandId::BindTransceiverResp {
                    return Ok(link);
                }
                let (name, meaning) = status::describe(code);
                return Err(format!("bind refused: {name} ({meaning})"));
            }
            // Nothing else is meant to come before the bind's answer.
            other => debug!("ignored {other:?} before the bind was answered"),
        }
    }
}

/// A submit written and not answered yet.
struct Pending {
    reply: oneshot::Sender<Result<String, SendError>>,
    deadline: Instant,
    /// Holds the submit's place in the window until it is answered.
    _permit: OwnedSemaphorePermit,
}

/// The bound session's state.
struct Bound<'a> {
    shared: &'a Shared,
    writer: Writer,
    pending: HashMap<u32, Pending>,
    last_sequence: u32,
    /// An `enquire_link` of ours not answered yet: its sequence and when
    /// it is due.
    enquire: Option<(u32, Instant)>,
    next_enquire: Instant,
}

async fn serve(
    shared: &Shared,
    link: Link,
    requests: &mut mpsc::Receiver<Submit>,
    reports: &Reports,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let config = &shared.config;
    let (writer, mut reader) = link.split();
    // deliver_sm reports go to the service in order through one task, and
    // come back as the sequence numbers to acknowledge: the session keeps
    // reading while the service is slow, and acknowledges nothing the
    // service has not taken.
    let (to_report, mut queued) = mpsc::channel::<(Report, u32)>(REPORT_QUEUE);
    // Unbounded, or the two tasks could wait on each other: the session
    // for room among the reports, the report task for room among the
    // acknowledgements the session is too busy to write. It holds no
    // more than the reports handed over since the session last looked.
    let (acked, mut to_ack) = mpsc::unbounded_channel::<u32>();
    let service = reports.clone();
    tokio::spawn(async move {
        // Each `deliver_sm` is acknowledged once the service has recorded
        // its report durably, never before: a crash then loses no receipt
        // (the SMSC offers an unacknowledged one again). Many wait at once,
        // so the service records them in batches.
        let mut recording = futures::stream::FuturesUnordered::new();
        let mut closed = false;
        loop {
            tokio::select! {
                next = queued.recv(), if !closed && recording.len() < REPORT_QUEUE => match next {
                    Some((report, sequence)) => {
                        let service = service.clone();
                        recording.push(async move { (service.deliver(report).await, sequence) });
                    }
                    None => closed = true,
                },
                Some((recorded, sequence)) = futures::StreamExt::next(&mut recording), if !recording.is_empty() => {
                    // Not recorded (the service is stopping): no
                    // acknowledgement, the SMSC sends it again later.
                    if recorded.is_ok() && acked.send(sequence).is_err() {
                        break;
                    }
                }
                else => break,
            }
        }
    });
    let enquire_every = Duration::from_secs(config.enquire_link_secs);
    let mut session = Bound {
        shared,
        writer,
        pending: HashMap::new(),
        last_sequence: BIND_SEQUENCE,
        enquire: None,
        next_enquire: Instant::now() + enquire_every,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        let step = tokio::select! {
            () = stopping(shutdown) => {
                session.unbind().await;
                break End::Stop;
            }
            incoming = reader.next() => match incoming {
                None => Err("closed by the SMSC".to_string()),
                Some(Err(e)) => Err(format!("unreadable stream: {e}")),
                Some(Ok(Incoming::Malformed { command_id, sequence, error })) => {
                    session.malformed(command_id, sequence, &error).await
                }
                Some(Ok(Incoming::Command(command))) => session.handle(*command, &to_report).await,
            },
            request = requests.recv() => match request {
                None => {
                    session.unbind().await;
                    break End::Stop;
                }
                Some(submit) => session.submit(submit, requests).await,
            },
            Some(sequence) = to_ack.recv() => {
                let ack = Command::new(CommandStatus::EsmeRok, sequence, DeliverSmResp::default());
                session.write(ack).await
            }
            _ = tick.tick() => session.housekeeping(enquire_every).await,
        };
        if let Err(why) = step {
            break End::Lost(why);
        }
    };
    let why = match &end {
        End::Stop => "the SMPP connector is stopping".to_string(),
        End::Lost(why) => format!("SMPP connection lost ({why})"),
    };
    for (_, pending) in session.pending.drain() {
        Counters::add(&shared.counters.failed);
        let _ = pending.reply.send(Err(SendError::Temporary(why.clone())));
    }
    end
}

impl Bound<'_> {
    fn next_sequence(&mut self) -> u32 {
        loop {
            // Sequence numbers run 1..=0x7FFFFFFF (SMPP 3.4 §3.2).
            self.last_sequence = if self.last_sequence >= 0x7FFF_FFFF {
                1
            } else {
                self.last_sequence + 1
            };
            if !self.pending.contains_key(&self.last_sequence) {
                return self.last_sequence;
            }
        }
    }

    /// Writes one PDU; a peer that does not take it in time is as good as
    /// gone.
    async fn write(&mut self, command: Command) -> Result<(), String> {
        match timeout(
            self.shared.config.response_timeout(),
            self.writer.send(command),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write: {e}")),
            Err(_) => Err("the SMSC stopped reading".into()),
        }
    }

    /// Writes this submit and any others already waiting, then flushes
    /// once.
    async fn submit(
        &mut self,
        first: Submit,
        requests: &mut mpsc::Receiver<Submit>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + self.shared.config.response_timeout();
        let mut next = Some(first);
        let result = timeout_at(deadline, async {
            while let Some(submit) = next.take() {
                // Its caller gave up waiting (and will send it again):
                // writing it now would send it twice.
                if submit.reply.is_closed() {
                    next = requests.try_recv().ok();
                    continue;
                }
                let sequence = self.next_sequence();
                let command = Command::new(CommandStatus::EsmeRok, sequence, submit.pdu);
                self.pending.insert(
                    sequence,
                    Pending {
                        reply: submit.reply,
                        deadline,
                        _permit: submit.permit,
                    },
                );
                Counters::add(&self.shared.counters.submitted);
                self.writer.feed(command).await?;
                next = requests.try_recv().ok();
            }
            self.writer.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write: {e}")),
            Err(_) => Err("the SMSC stopped reading".into()),
        }
    }

    async fn handle(
        &mut self,
        command: Command,
        to_report: &mpsc::Sender<(Report, u32)>,
    ) -> Result<(), String> {
        let sequence = command.sequence_number();
        let code = u32::from(command.status());
        match command.pdu() {
            Some(Pdu::SubmitSmResp(resp)) => {
                self.answer(sequence, code, Some(resp.message_id().as_str()));
                Ok(())
            }
            // An error answer may come without a body.
            None if command.id() == CommandId::SubmitSmResp => {
                self.answer(sequence, code, None);
                Ok(())
            }
            Some(Pdu::GenericNack) => {
                if self.enquire.is_some_and(|(s, _)| s == sequence) {
                    self.enquire = None;
                } else {
                    warn!(sequence, status = code, "generic_nack from the SMSC");
                    // A nack with status 0 is still no acceptance.
                    self.answer(sequence, code.max(status::INVALID_COMMAND), None);
                }
                Ok(())
            }
            Some(Pdu::EnquireLinkResp) => {
                if self.enquire.is_some_and(|(s, _)| s == sequence) {
                    self.enquire = None;
                }
                Ok(())
            }
            Some(Pdu::EnquireLink) => {
                let resp = Command::new(CommandStatus::EsmeRok, sequence, Pdu::EnquireLinkResp);
                self.write(resp).await
            }
            Some(Pdu::Unbind) => {
                let resp = Command::new(CommandStatus::EsmeRok, sequence, Pdu::UnbindResp);
                let _ = self.write(resp).await;
                Err("unbound by the SMSC".into())
            }
            Some(Pdu::DeliverSm(deliver)) => match receipt::interpret(deliver) {
                Ok(report) => {
                    let counters = &self.shared.counters;
                    Counters::add(match report {
                        Report::SmsReceipt(_) => &counters.receipts,
                        _ => &counters.inbound,
                    });
                    match to_report.try_send((report, sequence)) {
                        Ok(()) => Ok(()),
                        // The service is REPORT_QUEUE reports behind: the
                        // SMSC keeps this one and offers it again later,
                        // and the bind goes on serving submits meanwhile.
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            debug!(sequence, "reports queue full: deliver_sm refused for now");
                            self.nack_deliver(sequence).await
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            Err("the report task has stopped".to_string())
                        }
                    }
                }
                Err(why) => {
                    // Refusing it would have the SMSC redeliver it
                    // forever; there is nothing in it we can use.
                    warn!(sequence, "deliver_sm acknowledged and dropped: {why}");
                    let ack =
                        Command::new(CommandStatus::EsmeRok, sequence, DeliverSmResp::default());
                    self.write(ack).await
                }
            },
            _ if u32::from(command.id()) & 0x8000_0000 != 0 => {
                debug!(id = ?command.id(), sequence, "unexpected response ignored");
                Ok(())
            }
            _ => {
                warn!(id = ?command.id(), sequence, "request not served: generic_nack");
                self.nack(sequence, status::INVALID_COMMAND).await
            }
        }
    }

    /// A PDU whose body rusmpp could not read: a request is nacked, a
    /// response fails the submit it answers.
    async fn malformed(
        &mut self,
        command_id: u32,
        sequence: u32,
        error: &str,
    ) -> Result<(), String> {
        warn!(
            command_id = format!("0x{command_id:08X}"),
            sequence, "malformed PDU: {error}"
        );
        if command_id & 0x8000_0000 != 0 {
            if self.pending.contains_key(&sequence) {
                let why = format!("unreadable submit_sm_resp: {error}");
                self.fail(sequence, SendError::Temporary(why));
            }
            return Ok(());
        }
        self.nack(sequence, status::INVALID_LENGTH).await
    }

    /// ESME_RX_T_APPN: a temporary failure of ours; the SMSC redelivers.
    async fn nack_deliver(&mut self, sequence: u32) -> Result<(), String> {
        let resp = Command::new(
            CommandStatus::from(status::RECEIVER_TEMPORARY),
            sequence,
            DeliverSmResp::default(),
        );
        self.write(resp).await
    }

    async fn nack(&mut self, sequence: u32, code: u32) -> Result<(), String> {
        let nack = Command::new(CommandStatus::from(code), sequence, Pdu::GenericNack);
        self.write(nack).await
    }

    /// Resolves the submit `sequence` with the SMSC's answer.
    fn answer(&mut self, sequence: u32, code: u32, message_id: Option<&str>) {
        let Some(pending) = self.pending.remove(&sequence) else {
            debug!(
                sequence,
                "an answer to no submit of ours (late, after its deadline?)"
            );
            return;
        };
        let counters = &self.shared.counters;
        let result = match status::outcome(code) {
            Ok(()) => {
                Counters::add(&counters.accepted);
                let id = message_id.unwrap_or_default();
                if id.is_empty() {
                    // Accepted all the same: resending would duplicate it.
                    warn!(sequence, "submit_sm_resp without a message_id");
                }
                Ok(id.to_string())
            }
            Err(SendError::Throttled) => {
                Counters::add(&counters.throttled);
                self.shared.pause();
                Err(SendError::Throttled)
            }
            Err(e) => {
                Counters::add(&counters.failed);
                Err(e)
            }
        };
        let _ = pending.reply.send(result);
    }

    fn fail(&mut self, sequence: u32, error: SendError) {
        if let Some(pending) = self.pending.remove(&sequence) {
            Counters::add(&self.shared.counters.failed);
            let _ = pending.reply.send(Err(error));
        }
    }

    /// Deadlines: submits not answered in time fail, and so does the
    /// link (an SMSC that sits on submits is broken, and their window
    /// places are lost until it answers); an unanswered `enquire_link`
    /// drops the link; a new one goes out when due.
    async fn housekeeping(&mut self, enquire_every: Duration) -> Result<(), String> {
        let now = Instant::now();
        let late: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        if !late.is_empty() {
            let secs = self.shared.config.response_timeout_secs;
            for sequence in &late {
                let why = format!("no submit_sm_resp within {secs} s");
                self.fail(*sequence, SendError::Temporary(why));
            }
            return Err(format!(
                "{} submit_sm unanswered within {secs} s",
                late.len()
            ));
        }
        if let Some((_, due)) = self.enquire {
            if due <= now {
                return Err("enquire_link unanswered".into());
            }
        } else if self.next_enquire <= now {
            let sequence = self.next_sequence();
            self.enquire = Some((sequence, now + self.shared.config.response_timeout()));
            self.next_enquire = now + enquire_every;
            self.write(Command::new(
                CommandStatus::EsmeRok,
                sequence,
                Pdu::EnquireLink,
            ))
            .await?;
        }
        Ok(())
    }

    /// Says goodbye; the answer is not waited for.
    async fn unbind(&mut self) {
        let sequence = self.next_sequence();
        let _ = self
            .write(Command::new(CommandStatus::EsmeRok, sequence, Pdu::Unbind))
            .await;
        let _ = timeout(Duration::from_secs(1), self.writer.close()).await;
    }
}
