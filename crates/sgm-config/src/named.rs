//! Serde for the enums other crates own (`SdeKind`, `Predictor`, `Corrector`) through their
//! own name functions, so each name table has one home: the crate that owns the enum.

use sde_core::SdeKind;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use sgm_sample::{Corrector, Predictor};

/// An enum written in configs by a reference name.
pub(crate) trait Named: Sized + Copy {
    /// The name written in configs.
    fn name(self) -> &'static str;
    /// Parses a name; the error lists the choices.
    fn parse(name: &str) -> Result<Self, String>;
}

impl Named for SdeKind {
    fn name(self) -> &'static str {
        self.config_name()
    }
    fn parse(name: &str) -> Result<Self, String> {
        SdeKind::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = SdeKind::ALL.iter().map(|k| k.config_name()).collect();
            format!("unknown SDE `{name}` ({})", names.join(" | "))
        })
    }
}

impl Named for Predictor {
    fn name(self) -> &'static str {
        Predictor::name(self)
    }
    fn parse(name: &str) -> Result<Self, String> {
        Predictor::from_name(name).map_err(|e| e.to_string())
    }
}

impl Named for Corrector {
    fn name(self) -> &'static str {
        Corrector::name(self)
    }
    fn parse(name: &str) -> Result<Self, String> {
        Corrector::from_name(name).map_err(|e| e.to_string())
    }
}

/// `#[serde(with = "by_name")]` for a [`Named`] field.
pub(crate) mod by_name {
    use super::*;

    pub fn serialize<S: Serializer, T: Named>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(d: D) -> Result<T, D::Error> {
        let name = String::deserialize(d)?;
        T::parse(&name).map_err(D::Error::custom)
    }
}
