//! The two platforms of the seed and the three products that fire events.

use serde::{Deserialize, Serialize};

/// A platform with its own API, keys and data; a key of one is refused by
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Migosmtp,
    Telnxo,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::Migosmtp, Platform::Telnxo];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Migosmtp => "migosmtp",
            Platform::Telnxo => "telnxo",
        }
    }

    /// As people read it: `MigoSMTP`, `Telnxo`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Migosmtp => "MigoSMTP",
            Platform::Telnxo => "Telnxo",
        }
    }

    /// The platform of a `platform_id` of the events (`"1"`, `"2"`).
    pub fn of_id(id: &str) -> Option<Platform> {
        [Platform::Migosmtp, Platform::Telnxo]
            .into_iter()
            .find(|p| Product::of_platform(*p).platform_id() == id)
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The product that fired an event: the envelope's `product` and
/// `platform_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// The Rackwave portal (subscription and invoice lifecycle).
    Rackwave,
    Migosmtp,
    Telnxo,
}

impl Product {
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Rackwave => "rackwave",
            Product::Migosmtp => "migosmtp",
            Product::Telnxo => "telnxo",
        }
    }

    /// The envelope's `platform_id`: `"0"` for the portal, `"1"` MigoSMTP,
    /// `"2"` Telnxo.
    pub fn platform_id(self) -> &'static str {
        match self {
            Product::Rackwave => "0",
            Product::Migosmtp => "1",
            Product::Telnxo => "2",
        }
    }

    pub fn of_platform(platform: Platform) -> Product {
        match platform {
            Platform::Migosmtp => Product::Migosmtp,
            Platform::Telnxo => Product::Telnxo,
        }
    }
}
