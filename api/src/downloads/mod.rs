//! The download routes, plain HTTP beside GraphQL: attachments (`files`, by signed link or
//! credential) and chat transcripts (`transcript`). Who may download what is the service's to
//! decide; these turn requests and answers into HTTP, and every refusal into the same 404.

pub mod files;
pub mod transcript;
