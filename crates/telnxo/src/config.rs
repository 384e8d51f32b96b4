//! `[telnxo]` in `config.toml`: per channel, the connector and the route's
//! limits.

use serde::Deserialize;

/// Which connector a channel's route uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// Deterministic outcomes by number, offline (see `connectors::simulator`).
    #[default]
    Simulator,
    /// SMS over SMPP 3.4.
    Smpp,
    /// WhatsApp through Meta's Cloud API.
    CloudApi,
    /// Voice through FreeSWITCH's event socket.
    Freeswitch,
}

/// The limits of one channel's route.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RouteLimits {
    /// Sends a second at most (0: no limit).
    pub rate_per_second: u32,
    /// Sends in flight at most.
    pub concurrency: usize,
    /// Tries of a message that keeps failing for now, before it fails.
    pub max_attempts: u32,
    /// A message not sent within this many seconds of its acceptance
    /// fails as `expired`.
    pub validity_secs: u64,
}

impl Default for RouteLimits {
    fn default() -> Self {
        RouteLimits {
            rate_per_second: 0,
            concurrency: 32,
            max_attempts: 8,
            validity_secs: 24 * 3600,
        }
    }
}

impl RouteLimits {
    fn check(&self, section: &str) -> Result<(), String> {
        if self.concurrency == 0 || self.max_attempts == 0 || self.validity_secs == 0 {
            return Err(format!(
                "[{section}] concurrency, max_attempts and validity_secs must be greater than 0"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelnxoConfig {
    pub sms: SmsConfig,
    pub whatsapp: WhatsappConfig,
    pub voice: VoiceConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// `simulator` or `smpp`.
    pub connector: ConnectorKind,
    #[serde(flatten)]
    pub limits: RouteLimits,
    pub smpp: crate::connectors::smpp::SmppConfig,
}

/// `[telnxo.whatsapp]`: the Cloud API's keys sit beside `connector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WhatsappConfig {
    /// `simulator` or `cloud_api`.
    pub connector: ConnectorKind,
    #[serde(flatten)]
    pub limits: RouteLimits,
    #[serde(flatten)]
    pub cloud_api: crate::connectors::whatsapp_cloud::CloudApiConfig,
    /// Whatever key is left: refused by `check` (serde cannot deny
    /// unknown keys beside flattened ones).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// `[telnxo.voice]`: FreeSWITCH's keys sit beside `connector`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VoiceConfig {
    /// `simulator` or `freeswitch`.
    pub connector: ConnectorKind,
    #[serde(flatten)]
    pub limits: RouteLimits,
    #[serde(flatten)]
    pub freeswitch: crate::connectors::freeswitch::FreeswitchConfig,
    /// Whatever key is left: refused by `check` (serde cannot deny
    /// unknown keys beside flattened ones).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

impl TelnxoConfig {
    /// Whether the settings can work, as a one-line error.
    pub fn check(&self) -> Result<(), String> {
        use ConnectorKind::*;
        if !matches!(self.sms.connector, Simulator | Smpp) {
            return Err("[telnxo.sms] connector must be \"simulator\" or \"smpp\"".into());
        }
        if !matches!(self.whatsapp.connector, Simulator | CloudApi) {
            return Err(
                "[telnxo.whatsapp] connector must be \"simulator\" or \"cloud_api\"".into(),
            );
        }
        if !matches!(self.voice.connector, Simulator | Freeswitch) {
            return Err("[telnxo.voice] connector must be \"simulator\" or \"freeswitch\"".into());
        }
        for (section, unknown) in [
            ("telnxo.whatsapp", &self.whatsapp.unknown),
            ("telnxo.voice", &self.voice.unknown),
        ] {
            if let Some(key) = unknown.keys().next() {
                return Err(format!("[{section}] has no key `{key}`"));
            }
        }
        self.sms.limits.check("telnxo.sms")?;
        self.whatsapp.limits.check("telnxo.whatsapp")?;
        self.voice.limits.check("telnxo.voice")?;
        if self.sms.connector == Smpp {
            self.sms.smpp.check()?;
        }
        if self.whatsapp.connector == CloudApi {
            self.whatsapp.cloud_api.check()?;
        }
        if self.voice.connector == Freeswitch {
            self.voice.freeswitch.check()?;
        }
        Ok(())
    }
}

impl TelnxoConfig {
    /// The route limits of a channel.
    pub fn limits(&self, channel: rackwave_store::Channel) -> &RouteLimits {
        match channel {
            rackwave_store::Channel::Sms => &self.sms.limits,
            rackwave_store::Channel::Whatsapp => &self.whatsapp.limits,
            rackwave_store::Channel::Voice => &self.voice.limits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_sections_parse_and_refuse_unknown_keys() {
        let c: TelnxoConfig = toml::from_str(
            r#"
            [sms]
            connector = "smpp"
            rate_per_second = 50
            [sms.smpp]
            host = "10.0.0.1"
            system_id = "rackwave"
            password = "secret"
            window = 100
            [whatsapp]
            connector = "cloud_api"
            phone_number_id = "1234"
            access_token = "t"
            app_secret = "s"
            verify_token = "v"
            concurrency = 8
            [voice]
            connector = "freeswitch"
            password = "pw"
            "#,
        )
        .unwrap();
        assert_eq!(c.sms.connector, ConnectorKind::Smpp);
        assert_eq!(c.sms.limits.rate_per_second, 50);
        assert_eq!(c.sms.smpp.window, 100);
        assert_eq!(c.whatsapp.cloud_api.phone_number_id, "1234");
        assert_eq!(c.whatsapp.limits.concurrency, 8);
        assert_eq!(c.voice.freeswitch.password, "pw");
        c.check().unwrap();

        let typo: TelnxoConfig = toml::from_str("[whatsapp]\nphone_numberid = \"1\"\n").unwrap();
        assert!(typo.check().unwrap_err().contains("phone_numberid"));
        assert!(toml::from_str::<TelnxoConfig>("[sms]\nconector = \"smpp\"\n").is_err());
        let wrong: TelnxoConfig = toml::from_str("[sms]\nconnector = \"cloud_api\"\n").unwrap();
        assert!(wrong.check().is_err());
    }
}

/// What a Telnxo plan includes each billing period (`[[billing.plans]]`'s
/// `sms_allowance`, `whatsapp_allowance`, `voice_minutes`); `None`: no
/// limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowances {
    /// SMS parts (what carriers charge for).
    pub sms: Option<u64>,
    pub whatsapp: Option<u64>,
    pub voice_minutes: Option<u64>,
}

impl Allowances {
    pub fn of(&self, channel: rackwave_store::Channel) -> Option<u64> {
        match channel {
            rackwave_store::Channel::Sms => self.sms,
            rackwave_store::Channel::Whatsapp => self.whatsapp,
            rackwave_store::Channel::Voice => self.voice_minutes,
        }
    }
}
