//! What the client commands print, and the terminal plumbing around it: one JSON document per
//! answer (pretty) or one JSON line per record, on stdout; secrets read from stdin.
//!
//! The printed shapes are the command line's own interface, kept apart from the wire shapes:
//! a record line leaves out empty headers, a topic leaves out its retention and a user its
//! creation time, as scripts reading this output have always seen them. Owns no requests.
use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde::{Serialize, Serializer};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::wire::{FetchedRecord, GroupRecord, PartitionDescription, TopicDescription, User};

/// Writes `line` and a newline to stdout. A closed stdout (`consume | head`) comes back as the
/// bare `io::Error`, which `cli::run` treats as a normal end of output.
pub(crate) fn write_line(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// Whether `error` is stdout having been closed by the reader.
pub(crate) fn is_output_closed(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The first line of stdin, without its line ending; `what` names it in errors.
pub(crate) async fn read_secret_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .with_context(|| format!("reading the {what} from stdin"))?;
    let secret = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(
        !secret.is_empty(),
        "no {what} given (pass it on stdin or as an option)"
    );
    Ok(secret)
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_pretty<T: Serialize>(value: &T) -> anyhow::Result<()> {
    write_line(&serde_json::to_string_pretty(value)?)
}

/// The printed fields of a record: as fetched, but without `headers` when it has none.
#[derive(Serialize)]
struct RecordLine<'a> {
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_b64: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: &'a BTreeMap<String, String>,
    timestamp_ms: u64,
}

impl<'a> From<&'a FetchedRecord> for RecordLine<'a> {
    fn from(record: &'a FetchedRecord) -> Self {
        RecordLine {
            offset: record.offset,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            value_b64: record.value_b64.as_deref(),
            headers: &record.headers,
            timestamp_ms: record.timestamp_ms,
        }
    }
}

/// One printed line of `consume`: the record plus its partition.
pub(crate) struct ConsumedLine<'a> {
    pub partition: u32,
    pub record: &'a FetchedRecord,
}

impl Serialize for ConsumedLine<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Line<'a> {
            partition: u32,
            #[serde(flatten)]
            record: RecordLine<'a>,
        }
        Line {
            partition: self.partition,
            record: self.record.into(),
        }
        .serialize(serializer)
    }
}

/// One printed line of a group `consume`: the record with its topic and partition.
pub(crate) struct GroupLine<'a> {
    pub record: &'a GroupRecord,
}

impl Serialize for GroupLine<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Line<'a> {
            topic: &'a str,
            partition: u32,
            #[serde(flatten)]
            record: RecordLine<'a>,
        }
        Line {
            topic: &self.record.topic,
            partition: self.record.partition,
            record: (&self.record.record).into(),
        }
        .serialize(serializer)
    }
}

/// A printed topic: name, replication factor and partitions.
#[derive(Serialize)]
pub(crate) struct TopicOut<'a> {
    name: &'a str,
    replication_factor: u16,
    partitions: &'a [PartitionDescription],
}

impl<'a> From<&'a TopicDescription> for TopicOut<'a> {
    fn from(topic: &'a TopicDescription) -> Self {
        TopicOut {
            name: &topic.name,
            replication_factor: topic.replication_factor,
            partitions: &topic.partitions,
        }
    }
}

/// A printed user: name and superuser flag.
#[derive(Serialize)]
pub(crate) struct UserOut<'a> {
    username: &'a str,
    superuser: bool,
}

impl<'a> From<&'a User> for UserOut<'a> {
    fn from(user: &'a User) -> Self {
        UserOut {
            username: &user.username,
            superuser: user.superuser,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_recognised_as_closed_output() {
        let closed = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_output_closed(&closed));
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!is_output_closed(&other));
        assert!(!is_output_closed(&anyhow::anyhow!("broken pipe")));
    }

    #[test]
    fn consumed_line_carries_partition_and_record_fields() {
        let record = FetchedRecord {
            offset: 17,
            key: Some("k1".to_string()),
            value: Some("text".to_string()),
            value_b64: None,
            headers: BTreeMap::new(),
            timestamp_ms: 1_764_422_400_000,
        };
        let line = serde_json::to_value(ConsumedLine {
            partition: 4,
            record: &record,
        })
        .expect("serialize");
        assert_eq!(
            line,
            serde_json::json!({"partition":4,"offset":17,"key":"k1","value":"text",
                               "timestamp_ms":1_764_422_400_000u64})
        );
    }

    #[test]
    fn group_line_carries_topic_partition_and_headers_when_present() {
        let record = GroupRecord {
            topic: "orders".to_string(),
            partition: 2,
            record: FetchedRecord {
                offset: 5,
                key: None,
                value: None,
                value_b64: Some("AAE=".to_string()),
                headers: BTreeMap::from([("h".to_string(), "v".to_string())]),
                timestamp_ms: 9,
            },
        };
        let line = serde_json::to_string(&GroupLine { record: &record }).expect("serialize");
        assert_eq!(
            line,
            r#"{"topic":"orders","partition":2,"offset":5,"value_b64":"AAE=","headers":{"h":"v"},"timestamp_ms":9}"#
        );
    }

    #[test]
    fn printed_topic_and_user_leave_out_the_later_wire_fields() {
        let topic = TopicDescription {
            name: "orders".to_string(),
            replication_factor: 3,
            retention_ms: Some(1),
            retention_bytes: None,
            partitions: Vec::new(),
        };
        let printed = serde_json::to_string(&TopicOut::from(&topic)).expect("serialize");
        assert_eq!(
            printed,
            r#"{"name":"orders","replication_factor":3,"partitions":[]}"#
        );
        let user = User {
            username: "bob".to_string(),
            superuser: true,
            created_ms: 7,
        };
        let printed = serde_json::to_string(&UserOut::from(&user)).expect("serialize");
        assert_eq!(printed, r#"{"username":"bob","superuser":true}"#);
    }
}
