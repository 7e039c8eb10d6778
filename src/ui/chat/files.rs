//! Files attached to the message being written: what the composer holds while they upload. The
//! uploading itself and the chips that show it are in their own WASM file (`attach.rs`, through
//! `on_demand`), fetched the first time a file is picked, dropped or pasted.

use leptos::prelude::*;

use crate::model::attachments::AttachmentView;

/// Where one file's upload stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Upload {
    /// On its way: how much of it, in percent.
    Sending(u8),
    Ready(AttachmentView),
    /// Refused or lost, in words; it is not sent.
    Failed(String),
}

/// A file in the composer.
#[derive(Clone, Copy)]
pub struct PendingFile {
    /// For `<For>` only.
    pub key: u64,
    pub name: StoredValue<String>,
    pub size: f64,
    pub upload: RwSignal<Upload>,
}

impl PendingFile {
    pub fn is_sending(&self) -> bool {
        self.upload
            .try_with(|u| matches!(u, Upload::Sending(_)))
            .unwrap_or(false)
    }

    /// The bytes it adds to the message: its own while it uploads or once it is in, none
    /// once refused.
    pub fn counted_bytes(&self) -> Option<u64> {
        let refused = self
            .upload
            .try_with_untracked(|u| matches!(u, Upload::Failed(_)))
            .unwrap_or(true);
        (!refused).then_some(self.size.max(0.0) as u64)
    }

    pub fn ready(&self) -> Option<AttachmentView> {
        self.upload.try_with(|u| match u {
            Upload::Ready(view) => Some(view.clone()),
            _ => None,
        })?
    }
}
