//! What a broker in a Kubernetes StatefulSet pod derives from where it runs: its broker id from
//! the pod's ordinal (`broker.id_from_hostname`).
//!
//! A StatefulSet names its pods `<set>-0`, `<set>-1`, …; the pod's host name is that name. The
//! broker id is the ordinal plus one, since broker id 0 is not valid: `palisade-0` is broker 1,
//! `palisade-2` broker 3. A host name without a trailing `-<digits>` is refused at start-up.

use super::raw::RawConfig;
use super::ConfigError;

/// Largest ordinal accepted; broker ids are at most `u32::MAX`.
const ORDINAL_MAX: u64 = u32::MAX as u64 - 1;

/// The broker id for `hostname`: the trailing `-<n>` of its first label, plus one.
pub fn broker_id_from_hostname(hostname: &str) -> Result<u64, String> {
    let name = hostname.trim().split('.').next().unwrap_or_default();
    let ordinal = name
        .rsplit_once('-')
        .map(|(_, digits)| digits)
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    let Some(ordinal) = ordinal else {
        return Err(format!(
            "host name {hostname:?} has no StatefulSet ordinal: expected <name>-<n> such as \
             \"palisade-0\" (broker id n + 1); set broker.id instead and \
             broker.id_from_hostname = false"
        ));
    };
    match ordinal.parse::<u64>() {
        Ok(ordinal) if ordinal <= ORDINAL_MAX => Ok(ordinal + 1),
        _ => Err(format!(
            "the ordinal {ordinal} of host name {hostname:?} is above {ORDINAL_MAX}"
        )),
    }
}

/// With `broker.id_from_hostname = true`, replaces `broker.id` by the id derived from the host
/// name `hostname` returns (called only then).
pub(super) fn apply_hostname(
    raw: &mut RawConfig,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<(), ConfigError> {
    if !raw.broker.id_from_hostname {
        return Ok(());
    }
    let invalid = |value: String, allowed: String| ConfigError::Invalid {
        key: "broker.id_from_hostname".to_string(),
        value,
        origin: String::new(),
        allowed,
    };
    let name = hostname().map_err(|error| {
        invalid(
            "true".to_string(),
            format!("false here: this host's name cannot be read ({error})"),
        )
    })?;
    raw.broker.id = broker_id_from_hostname(&name)
        .map_err(|message| invalid("true".to_string(), format!("false on this host: {message}")))?;
    Ok(())
}

/// This machine's host name (`gethostname(2)`), which in a pod is the pod's name.
pub(super) fn system_hostname() -> std::io::Result<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, and gethostname writes at most that
    // many bytes into it.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8(buffer[..end].to_vec())
        .map_err(|_| std::io::Error::other("the host name is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ordinal_plus_one_is_the_broker_id() {
        assert_eq!(broker_id_from_hostname("palisade-0"), Ok(1));
        assert_eq!(broker_id_from_hostname("palisade-2"), Ok(3));
        assert_eq!(broker_id_from_hostname("my-queue-brokers-17"), Ok(18));
        assert_eq!(
            broker_id_from_hostname("palisade-4.palisade.default.svc.cluster.local"),
            Ok(5)
        );
    }

    #[test]
    fn a_hostname_without_an_ordinal_is_refused_with_the_reason() {
        for name in [
            "palisade",
            "palisade-",
            "palisade-a1",
            "",
            "7",
            "palisade-99999999999",
        ] {
            let error = broker_id_from_hostname(name).expect_err(name);
            assert!(error.contains(&format!("{name:?}")), "{error}");
        }
        let error = broker_id_from_hostname("web").unwrap_err();
        assert!(error.contains("<name>-<n>"), "{error}");
    }

    #[test]
    fn the_switch_replaces_the_configured_id_and_reports_a_bad_hostname() {
        let mut raw = RawConfig::default();
        raw.broker.id = 9;
        apply_hostname(&mut raw, || Ok("palisade-1".to_string())).unwrap();
        assert_eq!(raw.broker.id, 9, "off: the host name is not read");
        raw.broker.id_from_hostname = true;
        apply_hostname(&mut raw, || Ok("palisade-1".to_string())).unwrap();
        assert_eq!(raw.broker.id, 2);
        let error = apply_hostname(&mut raw, || Ok("laptop".to_string())).unwrap_err();
        assert_eq!(error.key(), Some("broker.id_from_hostname"));
        assert!(error.to_string().contains("\"laptop\""), "{error}");
    }

    #[test]
    fn this_machine_has_a_readable_hostname() {
        let name = system_hostname().expect("gethostname");
        assert!(!name.is_empty());
    }
}
