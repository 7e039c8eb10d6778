//! The few browser calls the chat makes outside components: timers, the clock, the tab's
//! visibility, random bytes, the address bar.

use std::time::Duration;

use leptos::prelude::set_timeout;

/// Resolves after `duration` (a browser timer).
pub async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
}

/// Milliseconds since the page loaded.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

pub fn is_hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden())
}

/// Random bytes from the browser's CSPRNG.
fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    let crypto = web_sys::window()?.crypto().ok()?;
    crypto.get_random_values_with_u8_array(&mut bytes).ok()?;
    Some(bytes)
}

/// A number in [0, 1).
pub fn random_fraction() -> f64 {
    random_bytes::<2>().map_or(0.5, |b| f64::from(u16::from_le_bytes(b)) / 65_536.0)
}

/// A random (v4) id from the browser's CSPRNG, which unlike `crypto.randomUUID` also exists on
/// plain-http LAN addresses.
pub fn new_turn_id() -> Option<uuid::Uuid> {
    random_bytes::<16>().map(|bytes| uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Changes the address bar without a router navigation, which would reload the page's data
/// mid-stream.
pub fn set_address(path: &str) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ =
            history.replace_state_with_url(&leptos::wasm_bindgen::JsValue::NULL, "", Some(path));
    }
}
