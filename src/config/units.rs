//! Sizes in human units: a byte count is written as an integer (`1048576`) or as a string with
//! a binary unit (`"1 MiB"`, `"512KiB"`, `"2 GiB"`; `B`, `KiB`, `MiB`, `GiB`, `TiB`, also
//! `k`/`KB`-style decimal units). Used by the TOML keys and by environment variables alike.
//! Pure; must not do I/O.

use serde::{Deserialize, Deserializer, Serializer};

/// Reads a size; the error says what was expected.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let expected = || {
        format!(
            "{text:?} is not a size: write bytes as an integer, or a number with a unit such as \
             \"64 MiB\" or \"1 GiB\""
        )
    };
    let number: u64 = digits.parse().map_err(|_| expected())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "k" | "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(expected()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is larger than 2^64 bytes"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Number(u64),
    Text(String),
}

fn read<'de, D: Deserializer<'de>>(written: Written) -> Result<u64, D::Error> {
    match written {
        Written::Number(number) => Ok(number),
        Written::Text(text) => parse_bytes(&text).map_err(serde::de::Error::custom),
    }
}

/// `#[serde(with = "units::bytes")]` for a `u64` byte count.
pub mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        read::<D>(Written::deserialize(deserializer)?)
    }
}

/// `#[serde(with = "units::optional_bytes")]` for an `Option<u64>` byte count.
pub mod optional_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_some(value),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        match Option::<Written>::deserialize(deserializer)? {
            Some(written) => read::<D>(written).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_bytes("10 MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("7 B"), Ok(7));
        for bad in ["", "MiB", "1.5 MiB", "-1", "64 mb", "64 MiBs", "1 PiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_bytes("99999999999 TiB").is_err());
    }

    #[test]
    fn toml_takes_integers_and_strings() {
        #[derive(serde::Deserialize)]
        struct Keys {
            #[serde(with = "bytes")]
            a: u64,
            #[serde(with = "bytes")]
            b: u64,
            #[serde(with = "optional_bytes", default)]
            c: Option<u64>,
            #[serde(with = "optional_bytes", default)]
            d: Option<u64>,
        }
        let keys: Keys = toml::from_str("a = 4096\nb = \"16 MiB\"\nc = \"1 GiB\"").unwrap();
        assert_eq!(
            (keys.a, keys.b, keys.c, keys.d),
            (4096, 16 << 20, Some(1 << 30), None)
        );
        assert!(toml::from_str::<Keys>("a = \"lots\"\nb = 1").is_err());
    }
}
