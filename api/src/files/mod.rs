//! Attachments: what may be uploaded (policy), how images are made safe (images), how an
//! upload becomes a file ready to store (upload), how a message's uploads are accepted and
//! stored (accept), the virus scan on the way in (scan), the signed links that serve them (signing), the guarded route (download) and the
//! transcript downloads (transcript).

pub mod accept;
pub mod docx;
pub mod download;
pub mod images;
pub mod policy;
pub mod scan;
pub mod signing;
pub mod transcript;
pub mod upload;

pub use accept::{AcceptedFiles, accept_uploads};
