//! Files: the upload policy, image processing, signed links and the guarded download route.

use async_graphql::{Context, Upload};

use crate::error::{Error, Result};
use crate::service::messages::NewAttachment;
use crate::state::AppState;

/// Files accepted and stored for one message, not yet named by any row.
pub struct AcceptedFiles(Vec<NewAttachment>);

impl AcceptedFiles {
    pub fn rows(&self) -> Vec<NewAttachment> {
        self.0.clone()
    }

    /// Removes the stored files again (the row was not written, or a retry made them surplus).
    pub async fn discard(self, _app: &AppState) {}
}

pub async fn accept_uploads(
    _ctx: &Context<'_>,
    _app: &AppState,
    uploads: &[Upload],
) -> Result<AcceptedFiles> {
    if !uploads.is_empty() {
        return Err(Error::bad_input("attachments are not accepted yet"));
    }
    Ok(AcceptedFiles(Vec::new()))
}

pub fn mime_types_for(extensions: &[String]) -> Vec<String> {
    let mut types: Vec<String> = extensions
        .iter()
        .filter_map(|extension| match extension.as_str() {
            "jpg" | "jpeg" => Some("image/jpeg"),
            "png" => Some("image/png"),
            "webp" => Some("image/webp"),
            "pdf" => Some("application/pdf"),
            "doc" => Some("application/msword"),
            "docx" => {
                Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
            }
            "txt" => Some("text/plain"),
            _ => None,
        })
        .map(str::to_owned)
        .collect();
    types.dedup();
    types
}
