//! What a `command_status` means for a send. The names and meanings are
//! SMPP 3.4's (§5.1.3, "command_status"); only two statuses are worth a
//! retry by their definition: a throttled bind and a full queue.

use crate::connectors::SendError;

/// ESME_RTHROTTLED: the SMSC wants fewer submits per second.
pub(super) const THROTTLED: u32 = 0x58;
/// ESME_RMSGQFUL: the SMSC's queue (for this destination) is full.
pub(super) const QUEUE_FULL: u32 = 0x14;
/// ESME_RX_T_APPN: our own temporary failure, for a `deliver_sm` we cannot
/// take now.
pub(super) const RECEIVER_TEMPORARY: u32 = 0x64;
/// ESME_RINVCMDLEN, for a PDU whose body we could not read.
pub(super) const INVALID_LENGTH: u32 = 0x02;
/// ESME_RINVCMDID, for a request we do not serve.
pub(super) const INVALID_COMMAND: u32 = 0x03;

/// (status, name, meaning), SMPP 3.4 §5.1.3.
const STATUSES: &[(u32, &str, &str)] = &[
    (0x01, "ESME_RINVMSGLEN", "message length is invalid"),
    (0x02, "ESME_RINVCMDLEN", "command length is invalid"),
    (0x03, "ESME_RINVCMDID", "invalid command id"),
    (
        0x04,
        "ESME_RINVBNDSTS",
        "incorrect bind status for the command",
    ),
    (0x05, "ESME_RALYBND", "already bound"),
    (0x06, "ESME_RINVPRTFLG", "invalid priority flag"),
    (
        0x07,
        "ESME_RINVREGDLVFLG",
        "invalid registered delivery flag",
    ),
    (0x08, "ESME_RSYSERR", "system error"),
    (0x0A, "ESME_RINVSRCADR", "invalid source address"),
    (0x0B, "ESME_RINVDSTADR", "invalid destination address"),
    (0x0C, "ESME_RINVMSGID", "message id is invalid"),
    (0x0D, "ESME_RBINDFAIL", "bind failed"),
    (0x0E, "ESME_RINVPASWD", "invalid password"),
    (0x0F, "ESME_RINVSYSID", "invalid system id"),
    (0x14, "ESME_RMSGQFUL", "message queue full"),
    (0x15, "ESME_RINVSERTYP", "invalid service type"),
    (0x45, "ESME_RSUBMITFAIL", "submit_sm failed"),
    (0x48, "ESME_RINVSRCTON", "invalid source address TON"),
    (0x49, "ESME_RINVSRCNPI", "invalid source address NPI"),
    (0x50, "ESME_RINVDSTTON", "invalid destination address TON"),
    (0x51, "ESME_RINVDSTNPI", "invalid destination address NPI"),
    (0x53, "ESME_RINVSYSTYP", "invalid system_type"),
    (
        0x58,
        "ESME_RTHROTTLED",
        "throttling error: too many submits",
    ),
    (0x61, "ESME_RINVSCHED", "invalid scheduled delivery time"),
    (0x62, "ESME_RINVEXPIRY", "invalid validity period"),
    (0x63, "ESME_RINVDFTMSGID", "predefined message not found"),
    (
        0x64,
        "ESME_RX_T_APPN",
        "ESME receiver temporary application error",
    ),
    (
        0x65,
        "ESME_RX_P_APPN",
        "ESME receiver permanent application error",
    ),
    (0x66, "ESME_RX_R_APPN", "ESME receiver reject message error"),
    (0xFE, "ESME_RDELIVERYFAILURE", "delivery failure"),
    (0xFF, "ESME_RUNKNOWNERR", "unknown error"),
];

/// The status's name (`ESME_0x…` for one SMPP 3.4 does not name) and
/// meaning.
pub(super) fn describe(status: u32) -> (String, String) {
    match STATUSES.iter().find(|(s, _, _)| *s == status) {
        Some((_, name, meaning)) => (name.to_string(), meaning.to_string()),
        None => (
            format!("ESME_0x{status:08X}"),
            format!("command_status 0x{status:08X}"),
        ),
    }
}

const SYSTEM_ERROR: u32 = 0x08;

/// What a `submit_sm_resp` with `status` means for the part.
pub(super) fn outcome(status: u32) -> Result<(), SendError> {
    match status {
        0 => Ok(()),
        THROTTLED => Err(SendError::Throttled),
        // A full queue says "later"; so, at most carriers, does a system
        // error (a restarting SMSC, a lost link to the network behind it):
        // retried, within the message's attempts and validity.
        QUEUE_FULL | SYSTEM_ERROR => {
            let (name, meaning) = describe(status);
            Err(SendError::Temporary(format!("{name}: {meaning}")))
        }
        other => {
            let (code, description) = describe(other);
            Err(SendError::Permanent { code, description })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_send_errors() {
        assert_eq!(outcome(0), Ok(()));
        assert_eq!(outcome(0x58), Err(SendError::Throttled));
        assert!(
            matches!(outcome(0x14), Err(SendError::Temporary(t)) if t.contains("ESME_RMSGQFUL"))
        );
        assert_eq!(
            outcome(0x0B),
            Err(SendError::Permanent {
                code: "ESME_RINVDSTADR".into(),
                description: "invalid destination address".into()
            })
        );
        assert_eq!(
            outcome(0x0400),
            Err(SendError::Permanent {
                code: "ESME_0x00000400".into(),
                description: "command_status 0x00000400".into()
            })
        );
    }
}
