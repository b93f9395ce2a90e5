//! Attachments: what may be uploaded (policy), how images are made safe (images), how an
//! upload becomes a file ready to store (upload), and the signed links that serve them
//! (signing).

pub mod images;
pub mod policy;
pub mod signing;
pub mod upload;
