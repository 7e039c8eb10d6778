//! What makes Rill an app on a phone, beyond its layout (`style/main.css`, "Phones"): the service
//! worker that keeps the build's files, the page kept above the on-screen keyboard, and whether
//! the device is used by touch (Enter then inserts a line: a phone keyboard has no Shift+Enter).
//! Browser-only: called from `hydrate`, effects and event handlers.

use leptos::wasm_bindgen::closure::Closure;
use leptos::wasm_bindgen::{JsCast, JsValue};

/// The service worker's address (served with its own headers, see `server::guard`).
const SERVICE_WORKER: &str = "/sw.js";

/// Once per page load, after hydration.
pub fn setup() {
    let Some(window) = web_sys::window() else {
        return;
    };
    register_service_worker(&window);
    follow_visible_height(&window);
}

/// A phone or tablet used by touch: its main pointer is a finger, and nothing hovers.
pub fn is_touch_first() -> bool {
    web_sys::window()
        .and_then(|w| {
            w.match_media("(hover: none) and (pointer: coarse)")
                .ok()
                .flatten()
        })
        .is_some_and(|query| query.matches())
}

/// The worker caches the hashed build files and the icons (`public/sw.js`). Browsers offer it only
/// to secure pages (https, or loopback): on a plain-http LAN address the page works without it.
fn register_service_worker(window: &web_sys::Window) {
    if !window.is_secure_context() {
        return;
    }
    let container = window.navigator().service_worker();
    if JsValue::from(container.clone()).is_undefined() {
        return;
    }
    let registered = wasm_bindgen_futures::JsFuture::from(container.register(SERVICE_WORKER));
    // A refusal (a private window, storage turned off) only means nothing is kept.
    wasm_bindgen_futures::spawn_local(async move {
        let _ = registered.await;
    });
}

/// Keeps `--viewport-height` at the height the person can see. Mobile browsers open the keyboard
/// over the page without shrinking `100dvh` (Safari; Chrome unless `interactive-widget` says
/// otherwise): the layout takes this height so the composer stays above the keyboard. The visual
/// viewport's height times its scale leaves pinch-zoom out of it.
fn follow_visible_height(window: &web_sys::Window) {
    let Some(viewport) = window.visual_viewport() else {
        return;
    };
    let apply = {
        let viewport = viewport.clone();
        move || {
            let height = (viewport.height() * viewport.scale()).floor();
            let root = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.document_element())
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
            if let Some(root) = root {
                let _ = root
                    .style()
                    .set_property("--viewport-height", &format!("{height}px"));
            }
        }
    };
    apply();
    // Kept for the page's life: one listener, whichever page of the app is shown.
    let on_resize = Closure::<dyn Fn()>::new(apply);
    let _ = viewport.add_event_listener_with_callback("resize", on_resize.as_ref().unchecked_ref());
    on_resize.forget();
}
