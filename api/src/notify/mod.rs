//! Conversations that outlive the page: the outbox, email over SMTP, and who is told what.
//!
//! The send path writes a notification job with the message when email is on (one cheap
//! statement, see `jobs::on_message`); each instance's outbox worker runs it after the delay.

pub mod jobs;
pub mod mail;
pub mod outbox;
pub mod resume;
pub mod web;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::config::Settings;

/// Email, as the app holds it: the trigger for the send path, the links, and the worker's parts.
pub struct Notify {
    pub trigger: Option<EmailTrigger>,
    pub links: Links,
    mailer: Option<mail::Mailer>,
    /// The pool without the request statement counter: the worker polls.
    worker_db: sea_orm::DatabaseConnection,
}

impl Notify {
    pub fn new(
        settings: &Settings,
        secret: &[u8],
        worker_db: sea_orm::DatabaseConnection,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            worker_db,
            trigger: EmailTrigger::from_settings(settings),
            links: Links::new(&settings.public_url, secret),
            mailer: mail::Mailer::from_settings(settings)?,
        })
    }

    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// The outbox worker of this instance, when there is anything to send.
    pub fn spawn_worker(&self, settings: &Settings) -> Option<tokio::task::JoinHandle<()>> {
        let db = self.worker_db.clone();
        let mailer = self.mailer.clone()?;
        let notifier = jobs::Notifier {
            db: db.clone(),
            mailer,
            links: self.links.clone(),
        };
        let config = outbox::WorkerConfig::from_settings(settings);
        Some(tokio::spawn(outbox::run_worker(db, notifier, config, None)))
    }
}

/// What the send path needs: set when email is on.
#[derive(Clone, Copy, Debug)]
pub struct EmailTrigger {
    pub delay: chrono::Duration,
}

impl EmailTrigger {
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        settings.email_enabled().then(|| Self {
            delay: chrono::Duration::from_std(settings.notify_delay)
                .unwrap_or(chrono::Duration::MAX),
        })
    }
}

/// The links an email carries, and the signature of unsubscribe links.
#[derive(Clone)]
pub struct Links {
    public_url: String,
    key: Vec<u8>,
}

impl Links {
    /// `secret` is the JWT secret; the signing key is derived from it for this use only.
    pub fn new(public_url: &str, secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new_from_slice(b"-").expect("any key"));
        mac.update(b"chatdesk email unsubscribe links");
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// The chat in the admin page (admin.js opens `?chat=`).
    pub fn admin_chat(&self, chat_id: Uuid) -> String {
        format!("{}/admin666/?status=all&chat={chat_id}", self.public_url)
    }

    pub fn admin_preferences(&self) -> String {
        format!("{}/admin666/#settings", self.public_url)
    }

    /// The page the chat started on (else the public URL), with the resume fragment.
    pub fn resume(&self, source_page: Option<&str>, code: &str) -> String {
        let page = source_page
            .filter(|page| page.starts_with("https://") || page.starts_with("http://"))
            .map_or_else(
                || format!("{}/", self.public_url),
                |page| page.split('#').next().unwrap_or(page).to_owned(),
            );
        format!("{page}#chatdesk-resume={code}")
    }

    pub fn unsubscribe(&self, chat_id: Uuid) -> String {
        format!(
            "{}/api/notify/unsubscribe?chat={chat_id}&sig={}",
            self.public_url,
            self.sign(chat_id)
        )
    }

    fn sign(&self, chat_id: Uuid) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(chat_id.as_bytes());
        crate::auth::visitor_token::hex(&mac.finalize().into_bytes()[..16])
    }

    pub fn verify(&self, chat_id: Uuid, signature: &str) -> bool {
        let expected = self.sign(chat_id);
        // Constant time: the signature is the only secret in the link.
        expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_links_are_signed_per_chat() {
        let links = Links::new(
            "https://chat.example/",
            b"secret-secret-secret-secret-secret",
        );
        let chat = Uuid::now_v7();
        let url = links.unsubscribe(chat);
        let signature = url.rsplit_once("sig=").unwrap().1;
        assert!(links.verify(chat, signature));
        assert!(!links.verify(Uuid::now_v7(), signature));
        assert!(!links.verify(chat, "00"));
        let other = Links::new("https://chat.example/", b"another-secret-another-secret-xx");
        assert!(!other.verify(chat, signature));
    }

    #[test]
    fn resume_links_keep_the_page_and_drop_its_fragment() {
        let links = Links::new("https://chat.example", b"k");
        assert_eq!(
            links.resume(Some("https://shop.example/p?x=1#top"), "abc"),
            "https://shop.example/p?x=1#chatdesk-resume=abc"
        );
        assert_eq!(
            links.resume(Some("javascript:alert(1)"), "abc"),
            "https://chat.example/#chatdesk-resume=abc"
        );
        assert_eq!(
            links.resume(None, "abc"),
            "https://chat.example/#chatdesk-resume=abc"
        );
    }
}
