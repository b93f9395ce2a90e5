//! Attachments as bytes: what may be uploaded (policy), how an upload becomes a checked file
//! ready to store (upload, with docx and images for the types that need a closer look), the
//! virus scan on the way in (scan), putting files into storage and taking them out (store),
//! and the signed links that serve them (signing). No GraphQL and no database in here: the
//! send (`service::sending`) and the download routes (`downloads`) use these.

pub mod docx;
pub mod images;
pub mod policy;
#[cfg(test)]
pub(crate) mod samples;
pub mod scan;
pub mod signing;
pub mod store;
pub mod upload;
