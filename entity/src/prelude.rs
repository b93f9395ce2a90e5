pub use super::admin::Entity as Admin;
pub use super::chat::Entity as Chat;
pub use super::chat_attachment::Entity as ChatAttachment;
pub use super::chat_erasure::Entity as ChatErasure;
pub use super::chat_event::Entity as ChatEvent;
pub use super::chat_message::Entity as ChatMessage;
