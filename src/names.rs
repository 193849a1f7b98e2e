//! Validation of topic, group and user names.
//!
//! Owns the one rule every name in Palisade follows: 1 to 249 characters from
//! `A-Z a-z 0-9 . _ -`, never `.` or `..` (they would be path components if a name ever
//! reached a file system or URL path). Topic names starting with `__` are reserved for
//! internal topics such as `__audit`; only [`validate_internal`] accepts them.
//!
//! Pure functions only: no I/O, no HTTP types. Errors say exactly what is wrong so the HTTP
//! layer can pass them to the client unchanged.

use std::fmt;

/// Longest allowed name, in characters (all allowed characters are one byte).
pub const NAME_CHARACTERS_MAX: usize = 249;

/// Prefix of internal topic names, such as `__audit`.
pub const INTERNAL_TOPIC_PREFIX: &str = "__";

/// What a name names; used in error messages and for the `__` rule on topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    Topic,
    Group,
    User,
}

impl fmt::Display for NameKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            NameKind::Topic => "topic",
            NameKind::Group => "group",
            NameKind::User => "user",
        };
        formatter.write_str(word)
    }
}

/// Why a name was refused. Positions are 0-based character indexes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name is empty; use 1 to 249 characters from A-Z a-z 0-9 . _ -")]
    Empty { kind: NameKind },
    #[error("{kind} name is {characters} characters long; at most 249 are allowed")]
    TooLong { kind: NameKind, characters: usize },
    #[error(
        "{kind} name has {character:?} at position {position}; only A-Z a-z 0-9 . _ - are allowed"
    )]
    BadCharacter {
        kind: NameKind,
        position: usize,
        character: char,
    },
    #[error("{kind} name {name:?} is reserved: {reason}")]
    Reserved {
        kind: NameKind,
        name: String,
        reason: &'static str,
    },
}

/// Validates a name supplied by a client. Topic names starting with `__` are refused.
pub fn validate(kind: NameKind, name: &str) -> Result<(), NameError> {
    validate_internal(kind, name)?;
    if kind == NameKind::Topic && name.starts_with(INTERNAL_TOPIC_PREFIX) {
        return Err(NameError::Reserved {
            kind,
            name: name.to_string(),
            reason: "names starting with \"__\" are for internal topics",
        });
    }
    Ok(())
}

/// Validates a name created by the broker itself; like [`validate`] but accepts `__` topics.
pub fn validate_internal(kind: NameKind, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    // Count at most one past the limit so a huge input costs no more than a valid one.
    let characters = name.chars().take(NAME_CHARACTERS_MAX + 1).count();
    if characters > NAME_CHARACTERS_MAX {
        return Err(NameError::TooLong {
            kind,
            characters: name.chars().count(),
        });
    }
    if let Some((position, character)) = name.chars().enumerate().find(|(_, c)| !is_allowed(*c)) {
        return Err(NameError::BadCharacter {
            kind,
            position,
            character,
        });
    }
    if name == "." || name == ".." {
        return Err(NameError::Reserved {
            kind,
            name: name.to_string(),
            reason: "\".\" and \"..\" are path components",
        });
    }
    Ok(())
}

fn is_allowed(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_whole_alphabet_and_the_longest_name() {
        let all = "ABCXYZabcxyz0189._-";
        for kind in [NameKind::Topic, NameKind::Group, NameKind::User] {
            assert_eq!(validate(kind, all), Ok(()));
            assert_eq!(validate(kind, &"a".repeat(249)), Ok(()));
            assert_eq!(validate(kind, "..."), Ok(()));
            assert_eq!(validate(kind, ".a"), Ok(()));
        }
    }

    #[test]
    fn each_refusal_says_what_is_wrong() {
        let topic = NameKind::Topic;
        assert_eq!(validate(topic, ""), Err(NameError::Empty { kind: topic }));
        assert_eq!(
            validate(topic, &"a".repeat(250)),
            Err(NameError::TooLong {
                kind: topic,
                characters: 250
            })
        );
        assert_eq!(
            validate(topic, "orders/eu"),
            Err(NameError::BadCharacter {
                kind: topic,
                position: 6,
                character: '/'
            })
        );
        assert_eq!(
            validate(topic, "caf\u{e9}"),
            Err(NameError::BadCharacter {
                kind: topic,
                position: 3,
                character: '\u{e9}'
            })
        );
        assert!(matches!(
            validate(topic, "."),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            validate(NameKind::User, ".."),
            Err(NameError::Reserved { .. })
        ));
        for bad in [" ", "a b", "a\0", "a\n", "a:b", "a*", "%2e"] {
            assert!(
                matches!(validate(topic, bad), Err(NameError::BadCharacter { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn internal_prefix_is_reserved_for_topics_only() {
        let refused = validate(NameKind::Topic, "__audit").unwrap_err();
        assert!(refused.to_string().contains("internal"), "{refused}");
        assert_eq!(validate_internal(NameKind::Topic, "__audit"), Ok(()));
        assert_eq!(validate(NameKind::Group, "__consumers"), Ok(()));
        assert_eq!(validate(NameKind::Topic, "_single"), Ok(()));
        assert!(validate_internal(NameKind::Topic, "..").is_err());
    }

    #[test]
    fn messages_name_the_kind_and_position() {
        let message = validate(NameKind::Group, "ab$").unwrap_err().to_string();
        assert_eq!(
            message,
            "group name has '$' at position 2; only A-Z a-z 0-9 . _ - are allowed"
        );
        let message = validate(NameKind::User, &"x".repeat(300))
            .unwrap_err()
            .to_string();
        assert!(message.contains("300 characters"), "{message}");
    }
}
