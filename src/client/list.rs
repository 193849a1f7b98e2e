//! Decoding of list replies (`GET /v1/topics`, `/v1/users`, `/v1/acls`, `/v1/audit`).
//!
//! Section 9 of the design fixes the items but not the envelope, so a list is accepted either
//! as a bare JSON array or as an object carrying the array under its collection name
//! (`{"topics":[...]}`). Nothing else is guessed.
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::error::ClientError;

/// Items of a list reply: a bare array, or the array at `field` of an object.
pub fn decode_list<T: DeserializeOwned>(body: &[u8], field: &str) -> Result<Vec<T>, ClientError> {
    let decode_error = |source| ClientError::Decode { source };
    let value: Value = serde_json::from_slice(body).map_err(decode_error)?;
    let items = match value {
        Value::Object(mut object) => object.remove(field).unwrap_or(Value::Null),
        other => other,
    };
    serde_json::from_value(items).map_err(decode_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bare_array_and_named_envelope() {
        let bare: Vec<u32> = decode_list(b"[1,2,3]", "topics").expect("bare array");
        let wrapped: Vec<u32> =
            decode_list(br#"{"topics":[1,2,3],"count":3}"#, "topics").expect("envelope");
        assert_eq!(bare, vec![1, 2, 3]);
        assert_eq!(wrapped, bare);
    }

    #[test]
    fn rejects_envelope_under_another_name() {
        let result: Result<Vec<u32>, _> = decode_list(br#"{"users":[1]}"#, "topics");
        assert!(matches!(result, Err(ClientError::Decode { .. })));
    }
}
