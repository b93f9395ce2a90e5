//! Email over SMTP with lettre (rustls): the transport from `CHATDESK_SMTP_URL`, and the
//! rendered email an `email` job carries.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::config::{Settings, redact_url};

/// An email ready to send, as an `email` job's payload. Everything in it was rendered when the
/// notification was decided, so a retry sends the same email.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Without angle brackets.
    pub message_id: String,
    /// The chat's thread: `In-Reply-To` and `References`, so a chat is one thread in the
    /// reader's mail client.
    pub thread_id: Option<String>,
    /// A URL for `List-Unsubscribe`.
    pub unsubscribe: Option<String>,
    /// Whether a POST to that URL unsubscribes at once (RFC 8058 `List-Unsubscribe-Post`).
    #[serde(default)]
    pub one_click: bool,
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of Message-IDs: the From address's.
    domain: String,
}

impl Mailer {
    /// The transport from the settings, or `None` when email is off. A malformed URL or From is
    /// an error at start, not at the first email.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.smtp_url else {
            return Ok(None);
        };
        let from_text = settings.mail_from.clone().unwrap_or_else(|| {
            let host = host_of(&settings.public_url);
            format!("Chatdesk <chatdesk@{host}>")
        });
        let from: Mailbox = from_text.parse().map_err(|error| {
            anyhow::anyhow!("CHATDESK_MAIL_FROM: '{from_text}' is not a mailbox: {error}")
        })?;
        let domain = from.email.domain().to_owned();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|error| {
                anyhow::anyhow!(
                    "CHATDESK_SMTP_URL: cannot use '{}': {error}",
                    redact_url(url.expose())
                )
            })?
            .hello_name(ClientId::Domain(host_of(&settings.public_url)))
            .timeout(Some(Duration::from_secs(30)));
        if let Some(path) = &settings.smtp_ca_file {
            builder = builder.tls(tls_with_ca(url.expose(), path)?);
        }
        let transport = builder.build();
        Ok(Some(Self {
            transport,
            from,
            domain,
        }))
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        let message = self.build(email)?;
        self.transport
            .send(message)
            .await
            .map_err(|error| anyhow::anyhow!("SMTP: {error}"))?;
        Ok(())
    }

    fn build(&self, email: &Email) -> anyhow::Result<Message> {
        let address = email
            .to
            .parse()
            .map_err(|error| anyhow::anyhow!("recipient '{}': {error}", one_line(&email.to)))?;
        let to = Mailbox::new(email.to_name.as_deref().map(one_line), address);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(one_line(&email.subject))
            .message_id(Some(format!("<{}>", one_line(&email.message_id))));
        if let Some(thread) = &email.thread_id {
            let thread = format!("<{}>", one_line(thread));
            builder = builder.in_reply_to(thread.clone()).references(thread);
        }
        if let Some(url) = &email.unsubscribe {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{}>", one_line(url)),
            ));
            if email.one_click {
                builder = builder.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
            }
        }
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(email.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(email.html.clone()),
            );
        Ok(builder.multipart(body)?)
    }
}

/// The TLS mode the URL asks for (as lettre reads it: `smtps://` wraps the connection,
/// `?tls=required` / `?tls=opportunistic` use STARTTLS), trusting the CA file besides the
/// system's roots.
fn tls_with_ca(url: &str, path: &std::path::Path) -> anyhow::Result<Tls> {
    let pem = std::fs::read(path)
        .map_err(|error| anyhow::anyhow!("CHATDESK_SMTP_CA_FILE: {}: {error}", path.display()))?;
    let certificate = Certificate::from_pem(&pem)
        .map_err(|error| anyhow::anyhow!("CHATDESK_SMTP_CA_FILE: {}: {error}", path.display()))?;
    let host = host_of(url);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let parameters = TlsParameters::builder(host)
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|error| anyhow::anyhow!("CHATDESK_SMTP_CA_FILE: {error}"))?;
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let tls_mode = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("tls="))
        .unwrap_or("");
    Ok(if url.starts_with("smtps://") {
        Tls::Wrapper(parameters)
    } else {
        match tls_mode {
            "required" => Tls::Required(parameters),
            "opportunistic" => Tls::Opportunistic(parameters),
            _ => anyhow::bail!(
                "CHATDESK_SMTP_CA_FILE is set but CHATDESK_SMTP_URL uses no TLS (use smtps:// or ?tls=required)"
            ),
        }
    })
}

/// Text for a header: control characters (CR and LF above all) become spaces, so nothing a
/// visitor typed can start a header of its own.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Text for HTML: the five characters that matter escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The host of an http(s) URL, for Message-IDs and the SMTP greeting.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    if host.is_empty() {
        "localhost".to_owned()
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_cannot_break_lines() {
        assert_eq!(one_line("a\r\nBcc: x@evil"), "a  Bcc: x@evil");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>\"&'"),
            "&lt;script&gt;&quot;&amp;&#39;"
        );
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("https://chat.example.com:8443/x"),
            "chat.example.com"
        );
        assert_eq!(host_of("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_of("http://"), "localhost");
    }
}
