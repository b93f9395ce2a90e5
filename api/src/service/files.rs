//! Who may download an attachment (SPEC §5): whoever holds a signed link for exactly that file
//! and variant, or a viewer who may see its chat. A purged file goes to no one.

use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::Result;
use crate::files::signing::{FileSigner, Variant};
use entity::{chat_attachment, chat_message};

/// What a download request shows for its right to a file.
pub enum Proof<'a> {
    /// A signed link's expiry (Unix seconds) and signature.
    SignedLink { expires: i64, signature: &'a str },
    /// The request's credential, as resolved (`Viewer::Invalid` for a bad one).
    Viewer(&'a Viewer),
}

/// The attachment `id`, when `proof` allows its `variant` to be downloaded at `now` (Unix
/// seconds). `None` for a missing, refused or purged file alike, so ids cannot be probed.
pub async fn for_download(
    db: &DatabaseConnection,
    signer: &FileSigner,
    id: Uuid,
    variant: Variant,
    proof: Proof<'_>,
    now: i64,
) -> Result<Option<chat_attachment::Model>> {
    let Some((attachment, Some(message))) = chat_attachment::Entity::find_by_id(id)
        .find_also_related(chat_message::Entity)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let allowed = match proof {
        Proof::SignedLink { expires, signature } => {
            signer.verify(attachment.id, variant, expires, signature, now)
        }
        Proof::Viewer(viewer) => viewer.require_chat(message.chat_id).is_ok(),
    };
    Ok((allowed && attachment.purged_at.is_none()).then_some(attachment))
}
