//! The lab's cache/data keys: what a client may send as `key`.

use crate::ApiError;

pub const MAX_KEY_LEN: usize = 64;

/// 1 to 64 characters of `A-Z a-z 0-9 _ - . :`; anything else is a 400 naming the rule.
pub fn validate(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(ApiError::bad_request(format!(
            "key must be 1 to {MAX_KEY_LEN} characters long"
        )));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        return Err(ApiError::bad_request(
            "key may contain only letters, digits and _ - . :",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_the_load_test_keys() {
        for k in ["hot", "k-42", "user_7.data", "a:b", &"x".repeat(64)] {
            assert!(validate(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        for k in ["", &"x".repeat(65), "a b", "a/b", "ä", "k;drop", "%2F"] {
            let err = validate(k).unwrap_err();
            assert_eq!(err.status, 400, "{k}");
        }
    }
}
