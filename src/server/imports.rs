//! Who is importing now: one import per person at a time (a second answers 409), so one person
//! cannot fill the disk with spooled uploads or the writer with parallel imports.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::db::Owner;

/// The people importing now.
#[derive(Default)]
pub struct Imports(Mutex<HashSet<String>>);

/// One person's import, running until dropped.
pub struct Running {
    imports: Arc<Imports>,
    owner: String,
}

impl Imports {
    /// Marks `owner` as importing; `None` if they are already.
    pub fn begin(self: &Arc<Self>, owner: &Owner) -> Option<Running> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(owner.0.clone()).then(|| Running {
            imports: self.clone(),
            owner: owner.0.clone(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.imports.0.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&self.owner);
    }
}
