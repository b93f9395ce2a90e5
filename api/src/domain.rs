//! Validated values at the edge of the API. Once parsed, they can be trusted.

use crate::error::{Error, Result};

/// Removes control characters (keeping newlines and tabs in message bodies) and bidi
/// overrides, which could make text render as something other than what was sent.
fn strip_controls(text: &str, keep_newlines: bool) -> String {
    text.chars()
        .filter(|c| {
            let bidi_control = matches!(*c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            !bidi_control && (!c.is_control() || (keep_newlines && matches!(*c, '\n' | '\t')))
        })
        .collect()
}

/// A message text: trimmed, controls stripped, within the length limit. Blank is `None`.
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(text: Option<&str>, max_chars: usize) -> Result<Option<Self>> {
        let Some(text) = text else { return Ok(None) };
        let cleaned = strip_controls(text.trim(), true);
        if cleaned.is_empty() {
            return Ok(None);
        }
        if cleaned.chars().count() > max_chars {
            return Err(Error::MessageTooLong { max: max_chars });
        }
        Ok(Some(Self(cleaned)))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A short single-line field (visitor name, phone, page): trimmed, controls stripped, bounded.
/// Blank is `None`, which clears the field.
pub fn short_text(field: &str, value: Option<&str>, max_chars: usize) -> Result<Option<String>> {
    let Some(value) = value else { return Ok(None) };
    let cleaned = strip_controls(value.trim(), false);
    if cleaned.chars().count() > max_chars {
        return Err(Error::bad_input(format!(
            "{field} may be at most {max_chars} characters"
        )));
    }
    Ok((!cleaned.is_empty()).then_some(cleaned))
}

/// An email address: one `@` with something on both sides (`admin@localhost` is fine), no
/// spaces, lower-cased.
pub fn email(value: Option<&str>) -> Result<Option<String>> {
    let Some(value) = short_text("email", value, 320)? else {
        return Ok(None);
    };
    let valid = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !value.contains(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        return Err(Error::bad_input("email is not a valid address"));
    }
    Ok(Some(value.to_lowercase()))
}

/// A phone number: digits and the usual separators, at most 50 characters.
pub fn phone(value: Option<&str>) -> Result<Option<String>> {
    let Some(value) = short_text("phone", value, 50)? else {
        return Ok(None);
    };
    if !value
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return Err(Error::bad_input(
            "phone may hold digits, spaces and + - ( ) . only",
        ));
    }
    Ok(Some(value))
}

/// A client's idempotency key: 1 to 100 printable ASCII characters.
pub fn client_message_id(value: Option<&str>) -> Result<Option<String>> {
    let Some(value) = value else { return Ok(None) };
    if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_input(
            "clientMessageId must be 1 to 100 printable ASCII characters",
        ));
    }
    Ok(Some(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_are_cleaned_and_bounded() {
        let body = MessageBody::parse(Some("  hi\u{202E}\u{0}\nthere\t "), 100)
            .unwrap()
            .unwrap();
        assert_eq!(body.into_inner(), "hi\nthere");
        assert!(MessageBody::parse(Some("   \n "), 100).unwrap().is_none());
        assert!(MessageBody::parse(None, 100).unwrap().is_none());
        assert!(matches!(
            MessageBody::parse(Some("ééé"), 2),
            Err(Error::MessageTooLong { max: 2 })
        ));
        assert!(MessageBody::parse(Some("ééé"), 3).unwrap().is_some());
    }

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(
            email(Some(" Ann@Example.COM ")).unwrap().unwrap(),
            "ann@example.com"
        );
        assert!(email(Some("")).unwrap().is_none());
        for bad in ["ann", "ann@", "@example.com", "a b@example.com", "a@b@c.d"] {
            assert!(email(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_fields_and_keys() {
        assert_eq!(
            short_text("name", Some(" Ann\u{7} "), 10).unwrap().unwrap(),
            "Ann"
        );
        assert!(short_text("name", Some(&"x".repeat(11)), 10).is_err());
        assert_eq!(
            phone(Some("+1 (555) 010-0000")).unwrap().unwrap(),
            "+1 (555) 010-0000"
        );
        assert!(phone(Some("call me")).is_err());
        assert!(client_message_id(Some("abc-123")).unwrap().is_some());
        assert!(client_message_id(Some("")).is_err());
        assert!(client_message_id(Some("with space")).is_err());
    }
}
