//! `chatdesk seed-demo`: a handful of realistic chats, so a new install has something to show.

use sea_orm::DatabaseConnection;

use crate::auth::Viewer;
use crate::auth::viewer::AdminViewer;
use crate::error::Result;
use crate::realtime::EventBus;
use crate::service::chats::{self, NewChat, VisitorChanges};
use crate::service::messages::{self, NewMessage};
use entity::chat::ChatStatus;

struct DemoChat {
    name: Option<&'static str>,
    email: Option<&'static str>,
    page: &'static str,
    status: ChatStatus,
    /// (from the visitor?, text)
    lines: &'static [(bool, &'static str)],
}

const CHATS: &[DemoChat] = &[
    DemoChat {
        name: Some("Maya Lindqvist"),
        email: Some("maya@example.com"),
        page: "/pricing",
        status: ChatStatus::Open,
        lines: &[
            (
                true,
                "Hi! Does the yearly plan include the team seats, or are those extra?",
            ),
            (
                false,
                "Hello Maya! The yearly plan includes 5 seats; more are $4 a month each.",
            ),
            (true, "Great, and can I switch from monthly mid-cycle?"),
        ],
    },
    DemoChat {
        name: Some("Tomás Ortega"),
        email: Some("tomas.ortega@example.org"),
        page: "/orders/track",
        status: ChatStatus::Pending,
        lines: &[
            (true, "My order #4821 says delivered but nothing arrived."),
            (
                false,
                "Sorry about that! I've opened a trace with the carrier; I'll update you within a day.",
            ),
        ],
    },
    DemoChat {
        name: None,
        email: None,
        page: "/",
        status: ChatStatus::Open,
        lines: &[(true, "Do you ship to Canada?")],
    },
    DemoChat {
        name: Some("Priya Raman"),
        email: Some("priya@example.net"),
        page: "/help/returns",
        status: ChatStatus::Closed,
        lines: &[
            (true, "How long do refunds take?"),
            (
                false,
                "Refunds reach your card 3-5 business days after we receive the return.",
            ),
            (true, "Perfect, thanks!"),
            (false, "You're welcome, have a good day!"),
        ],
    },
];

/// Creates the demo chats as `admin` would answer them. Returns how many chats were made.
pub async fn seed(db: &DatabaseConnection, admin: AdminViewer) -> Result<usize> {
    let bus = EventBus::in_process();
    let admin = Viewer::Admin(admin);
    for demo in CHATS {
        let new = NewChat {
            source_page: Some(demo.page.to_owned()),
            ..NewChat::default()
        };
        let (chat, _token) = chats::start(db, &bus, new).await?;
        let visitor = Viewer::Visitor { chat_id: chat.id };
        if demo.name.is_some() || demo.email.is_some() {
            let changes = VisitorChanges {
                name: demo.name.map(|name| Some(name.to_owned())),
                email: demo.email.map(|email| Some(email.to_owned())),
                phone: None,
            };
            chats::update_visitor(db, &bus, &visitor, chat.id, changes).await?;
        }
        for (from_visitor, text) in demo.lines {
            let sender = if *from_visitor { &visitor } else { &admin };
            let message = NewMessage {
                body: Some((*text).to_owned()),
                client_message_id: None,
                attachments: Vec::new(),
            };
            messages::send(db, &bus, sender, chat.id, message).await?;
        }
        if demo.status != ChatStatus::Open {
            chats::set_status(db, &bus, &admin, chat.id, demo.status).await?;
        }
    }
    Ok(CHATS.len())
}
