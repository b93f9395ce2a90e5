//! `chatdesk seed-demo`: a handful of realistic chats, so a new install has something to show,
//! attachments included: a screenshot and a PDF made here, sent the way uploads are. The chats
//! are spread over the last weeks (so the date filter and "3d" have something to show), some
//! read by the team and some not, and the oldest one's photo is past retention: purged, it
//! shows the "file expired" card.

use std::io::Cursor;

use chrono::{DateTime, Duration, Utc};
use image::{ImageFormat, Rgb, RgbImage};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::auth::viewer::AdminViewer;
use crate::error::{Error, Result};
use crate::files::policy::FilePolicy;
use crate::files::upload::{PreparedFile, prepare_reader};
use crate::realtime::EventBus;
use crate::service::chats::{self, NewChat, VisitorChanges};
use crate::service::sending::{self, Draft, Outlets};
use crate::storage::Storage;
use entity::chat::ChatStatus;
use entity::chat_event::EventKind;
use entity::{chat, chat_attachment, chat_event, chat_message};

/// A file a demo message carries, generated on the spot.
#[derive(Clone, Copy, Debug)]
enum DemoFile {
    /// A PNG "screenshot" of a tracking page.
    TrackingScreenshot,
    /// A one-page PDF.
    CarrierTrace,
}

struct DemoChat {
    name: Option<&'static str>,
    email: Option<&'static str>,
    page: &'static str,
    status: ChatStatus,
    /// How long ago the conversation took place.
    hours_ago: i64,
    /// The visitor's last messages the team has not read yet (0: all read).
    unread: usize,
    /// Its files are past retention: removed from storage, their cards say "file expired".
    purged: bool,
    /// (from the visitor?, text, attached file)
    lines: &'static [(bool, &'static str, Option<DemoFile>)],
}

const CHATS: &[DemoChat] = &[
    DemoChat {
        name: Some("Maya Lindqvist"),
        email: Some("maya@example.com"),
        page: "/pricing",
        status: ChatStatus::Open,
        hours_ago: 1,
        unread: 1,
        purged: false,
        lines: &[
            (
                true,
                "Hi! Does the yearly plan include the team seats, or are those extra?",
                None,
            ),
            (
                false,
                "Hello Maya! The yearly plan includes 5 seats; more are $4 a month each.",
                None,
            ),
            (
                true,
                "Great, and can I switch from monthly mid-cycle?",
                None,
            ),
        ],
    },
    DemoChat {
        name: Some("Tomás Ortega"),
        email: Some("tomas.ortega@example.org"),
        page: "/orders/track",
        status: ChatStatus::Pending,
        hours_ago: 3 * 24 + 5,
        unread: 0,
        purged: false,
        lines: &[
            (
                true,
                "My order #4821 says delivered but nothing arrived.",
                None,
            ),
            (
                true,
                "This is what the tracking page shows:",
                Some(DemoFile::TrackingScreenshot),
            ),
            (
                false,
                "Sorry about that! I've opened a trace with the carrier; I'll update you within a day.",
                None,
            ),
            (
                false,
                "Here is the trace request, for your records.",
                Some(DemoFile::CarrierTrace),
            ),
        ],
    },
    DemoChat {
        name: None,
        email: None,
        page: "/",
        status: ChatStatus::Open,
        hours_ago: 9 * 24 + 2,
        unread: 1,
        purged: false,
        lines: &[(true, "Do you ship to Canada?", None)],
    },
    DemoChat {
        name: Some("Priya Raman"),
        email: Some("priya@example.net"),
        page: "/help/returns",
        status: ChatStatus::Closed,
        hours_ago: 17 * 24 + 3,
        unread: 0,
        purged: false,
        lines: &[
            (true, "How long do refunds take?", None),
            (
                false,
                "Refunds reach your card 3-5 business days after we receive the return.",
                None,
            ),
            (true, "Perfect, thanks!", None),
            (false, "You're welcome, have a good day!", None),
        ],
    },
    DemoChat {
        name: Some("Jonas Weber"),
        email: Some("jonas.weber@example.de"),
        page: "/orders/track",
        status: ChatStatus::Closed,
        // Past the default 90 days of retention.
        hours_ago: 95 * 24,
        unread: 0,
        purged: true,
        lines: &[
            (
                true,
                "The parcel arrived damaged, see the photo.",
                Some(DemoFile::TrackingScreenshot),
            ),
            (
                false,
                "Sorry to see that! A replacement is on its way, no need to send it back.",
                None,
            ),
            (true, "Thank you, that was quick.", None),
        ],
    },
    DemoChat {
        name: Some("Lea Fontaine"),
        email: None,
        page: "/help/shipping",
        status: ChatStatus::Open,
        hours_ago: 26,
        unread: 2,
        purged: false,
        lines: &[
            (true, "Bonjour! Do you ship to France?", None),
            (
                false,
                "Hello Lea! Yes, to the whole EU, in 3-5 business days.",
                None,
            ),
            (true, "And is there a customs fee?", None),
            (true, "Order would be about 120 EUR.", None),
        ],
    },
];

/// Minutes between two lines of a demo conversation.
const MINUTES_BETWEEN_LINES: i64 = 3;

/// Creates the demo chats as `admin` would answer them, storing their files in `storage` under
/// the upload `policy` (a file the policy refuses is left out). Returns how many chats were made.
pub async fn seed(
    db: &DatabaseConnection,
    storage: &dyn Storage,
    policy: &FilePolicy,
    admin: AdminViewer,
) -> Result<usize> {
    let bus = EventBus::in_process();
    // Seeding is not news for integrators: no webhooks.
    let hooks = crate::webhooks::Hooks::off();
    let admin = Viewer::Admin(admin);
    let to = Outlets {
        db,
        bus: &bus,
        email: None,
        hooks: &hooks,
        storage,
    };
    for demo in CHATS {
        let new = NewChat {
            source_page: Some(demo.page.to_owned()),
            ..NewChat::default()
        };
        let (chat, _token) = chats::start(db, &bus, &hooks, new).await?;
        let visitor = Viewer::Visitor { chat_id: chat.id };
        if demo.name.is_some() || demo.email.is_some() {
            let changes = VisitorChanges {
                name: demo.name.map(|name| Some(name.to_owned())),
                email: demo.email.map(|email| Some(email.to_owned())),
                phone: None,
            };
            chats::update_visitor(db, &bus, &hooks, &visitor, chat.id, changes).await?;
        }
        for (from_visitor, text, file) in demo.lines {
            let sender = if *from_visitor { &visitor } else { &admin };
            let files = match file {
                Some(file) => demo_file(policy, *file).await?,
                None => Vec::new(),
            };
            let draft = Draft {
                body: Some((*text).to_owned()),
                client_message_id: None,
            };
            sending::send_prepared(to, sender, chat.id, draft, &files).await?;
        }
        if demo.status != ChatStatus::Open {
            chats::set_status(db, &bus, &hooks, &admin, chat.id, demo.status).await?;
        }
        let at = crate::clock::now() - Duration::hours(demo.hours_ago);
        backdate(db, chat.id, at, demo.unread).await?;
        if demo.purged {
            purge_files(db, storage, chat.id).await?;
        }
    }
    Ok(CHATS.len())
}

/// Moves a freshly made demo chat back in time to `start`: its lines a few minutes apart, its
/// history (started, details, status) along with them, and the team's read mark before the
/// last `unread` lines (the visitor's), so that the inbox shows them unread.
async fn backdate(
    db: &DatabaseConnection,
    chat_id: Uuid,
    start: DateTime<Utc>,
    unread: usize,
) -> Result<()> {
    let messages = chat_message::Entity::find()
        .filter(chat_message::Column::ChatId.eq(chat_id))
        .order_by_asc(chat_message::Column::CreatedAt)
        .order_by_asc(chat_message::Column::Id)
        .all(db)
        .await?;
    let line_at = |index: usize| start + Duration::minutes(MINUTES_BETWEEN_LINES * index as i64);
    let mut times = Vec::with_capacity(messages.len());
    for (index, message) in messages.into_iter().enumerate() {
        let at = line_at(index);
        times.push(at);
        let id = message.id;
        let mut active = message.into_active_model();
        active.created_at = Set(at);
        active.update(db).await?;
        chat_attachment::Entity::update_many()
            .col_expr(
                chat_attachment::Column::CreatedAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(chat_attachment::Column::ChatMessageId.eq(id))
            .exec(db)
            .await?;
    }
    let created = start - Duration::minutes(1);
    let last = times.last().copied().unwrap_or(created);
    let status_at = last + Duration::minutes(2);
    let events = chat_event::Entity::find()
        .filter(chat_event::Column::ChatId.eq(chat_id))
        .all(db)
        .await?;
    let mut changed = None;
    for event in events {
        let at = match event.kind {
            EventKind::Started | EventKind::VisitorUpdated => created,
            EventKind::StatusChanged => {
                changed = Some(status_at);
                status_at
            }
            EventKind::Read => last,
        };
        let mut active = event.into_active_model();
        active.created_at = Set(at);
        active.update(db).await?;
    }
    let read_upto = times
        .len()
        .checked_sub(unread + 1)
        .map(|index| times[index]);
    let Some(chat) = chat::Entity::find_by_id(chat_id).one(db).await? else {
        return Err(Error::NotFound("chat"));
    };
    let mut active = chat.into_active_model();
    active.created_at = Set(created);
    active.last_message_at = Set(Some(last));
    active.updated_at = Set(changed.unwrap_or(last));
    active.admin_last_read_at = Set(read_upto);
    active.visitor_last_read_at = Set(Some(last));
    active.update(db).await?;
    Ok(())
}

/// Does to a demo chat's files what retention does to old ones: the files go, the rows stay
/// marked purged.
async fn purge_files(db: &DatabaseConnection, storage: &dyn Storage, chat_id: Uuid) -> Result<()> {
    let message_ids: Vec<Uuid> = chat_message::Entity::find()
        .filter(chat_message::Column::ChatId.eq(chat_id))
        .all(db)
        .await?
        .into_iter()
        .map(|message| message.id)
        .collect();
    let files = chat_attachment::Entity::find()
        .filter(chat_attachment::Column::ChatMessageId.is_in(message_ids))
        .all(db)
        .await?;
    for file in files {
        storage.delete(&file.storage_path).await?;
        if let Some(thumbnail) = &file.thumbnail_path {
            storage.delete(thumbnail).await?;
        }
        let mut active = file.into_active_model();
        active.purged_at = Set(Some(crate::clock::now()));
        active.update(db).await?;
    }
    Ok(())
}

/// Generates `file` and checks it as an upload would be: policy, image re-encoding.
async fn demo_file(policy: &FilePolicy, file: DemoFile) -> Result<Vec<PreparedFile>> {
    let (name, bytes) = match file {
        DemoFile::TrackingScreenshot => ("tracking-4821.png", tracking_screenshot()?),
        DemoFile::CarrierTrace => ("carrier-trace-4821.pdf", carrier_trace_pdf()),
    };
    match prepare_reader(policy, name, bytes.as_slice()).await {
        Ok(prepared) => Ok(vec![prepared]),
        Err(error @ (Error::UnsupportedFileType(_) | Error::FileTooLarge { .. })) => {
            tracing::info!(
                name,
                reason = error.message(),
                "demo file left out by the upload policy"
            );
            Ok(Vec::new())
        }
        Err(error) => Err(error),
    }
}

/// A 480x300 PNG that looks like a parcel-tracking page: a header bar, four progress steps
/// (the last one "delivered"), and grey lines of text.
fn tracking_screenshot() -> Result<Vec<u8>> {
    let (width, height) = (480, 300);
    let mut image = RgbImage::from_pixel(width, height, Rgb([246, 247, 249]));
    let mut fill = |x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]| {
        for y in y0..(y0 + h).min(height) {
            for x in x0..(x0 + w).min(width) {
                image.put_pixel(x, y, Rgb(colour));
            }
        }
    };
    fill(0, 0, width, 48, [37, 99, 235]);
    fill(24, 16, 140, 16, [219, 234, 254]);
    for step in 0..4 {
        let x = 48 + step * 120;
        fill(x, 96, 24, 24, [22, 163, 74]);
        if step < 3 {
            fill(x + 24, 106, 96, 4, [22, 163, 74]);
        }
        fill(x - 12, 132, 48, 6, [156, 163, 175]);
    }
    for line in 0..5 {
        fill(24, 172 + line * 22, 432 - line * 40, 8, [209, 213, 219]);
    }
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, ImageFormat::Png)
        .map_err(Error::internal)?;
    Ok(png.into_inner())
}

/// A minimal but complete one-page PDF (catalog, pages, page, content stream, a standard font,
/// and a cross-reference table with exact offsets), written by hand: no PDF library needed.
fn carrier_trace_pdf() -> Vec<u8> {
    let lines = [
        "Carrier trace request",
        "Order #4821 - shipped 3 parcels, tracking RX48210001",
        "Reported: marked delivered, not received by the customer",
        "Status: trace opened, answer expected within 1 business day",
    ];
    let mut content = String::from("BT /F1 20 Tf 72 770 Td 24 TL\n");
    for (index, line) in lines.iter().enumerate() {
        if index == 1 {
            content.push_str("/F1 12 Tf 18 TL\n");
        }
        content.push_str(&format!("({line}) Tj T*\n"));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    // The binary comment marks the file as binary for tools that guess.
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        // Each entry is exactly 20 bytes, end of line included.
        table.push_str(&format!("{offset:010} 00000 n \n"));
    }
    table.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf.extend_from_slice(table.as_bytes());
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position just after the first `needle` in `haystack`.
    fn after(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
            .unwrap()
            + needle.len()
    }

    #[test]
    fn the_demo_pdf_has_a_correct_cross_reference_table() {
        let pdf = carrier_trace_pdf();
        assert!(pdf.starts_with(b"%PDF-1.4\n") && pdf.ends_with(b"%%EOF\n"));
        // Past the binary comment on line 2 the file is ASCII.
        let ascii = |from: usize| std::str::from_utf8(&pdf[from..]).unwrap();
        let tail = ascii(pdf.len() - 40);
        let startxref: usize = tail
            .rsplit("startxref\n")
            .next()
            .and_then(|tail| tail.lines().next())
            .and_then(|number| number.parse().ok())
            .unwrap();
        let entries = ascii(startxref);
        assert!(entries.starts_with("xref\n0 6\n"), "{entries}");
        for object in 1..=5 {
            let line = entries.lines().nth(2 + object).unwrap();
            assert_eq!(line.len(), 19, "{line:?}"); // 20 with the newline
            let offset: usize = line[..10].parse().unwrap();
            assert!(
                pdf[offset..].starts_with(format!("{object} 0 obj\n").as_bytes()),
                "object {object} at {offset}"
            );
        }
        let length_at = after(&pdf, b"/Length ");
        let length: usize = ascii(length_at).split(' ').next().unwrap().parse().unwrap();
        let stream_at = after(&pdf, b"stream\n");
        assert!(pdf[stream_at + length..].starts_with(b"\nendstream"));
    }

    #[test]
    fn the_demo_screenshot_is_a_png() {
        let png = tracking_screenshot().unwrap();
        let image = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert_eq!((image.width(), image.height()), (480, 300));
    }
}
