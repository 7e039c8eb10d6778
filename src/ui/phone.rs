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

/// Keeps `--viewport-height` and `--viewport-top` at the part of the page the person can see.
/// Mobile browsers open the keyboard over the page without shrinking `100dvh` (Safari; Chrome
/// unless `interactive-widget` says otherwise): the layout takes this height so the composer
/// stays above the keyboard. iOS Safari also moves what is seen down the page by
/// `visualViewport.offsetTop` to show the focused field: the layout moves with it (see
/// [`visible_area`]), or its header would be above the screen and the composer float below it.
fn follow_visible_height(window: &web_sys::Window) {
    let Some(viewport) = window.visual_viewport() else {
        return;
    };
    let apply = {
        let viewport = viewport.clone();
        move || {
            let Some(area) =
                visible_area(viewport.height(), viewport.scale(), viewport.offset_top())
            else {
                return;
            };
            let root = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.document_element())
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
            if let Some(root) = root {
                let style = root.style();
                let _ = style.set_property("--viewport-height", &format!("{}px", area.height));
                let _ = style.set_property("--viewport-top", &format!("{}px", area.top));
            }
        }
    };
    apply();
    // Kept for the page's life: one listener each, whichever page of the app is shown. The
    // offset changes with a scroll of the visual viewport, without a resize.
    let on_change = Closure::<dyn Fn()>::new(apply);
    for event in ["resize", "scroll"] {
        let _ =
            viewport.add_event_listener_with_callback(event, on_change.as_ref().unchecked_ref());
    }
    on_change.forget();
}

/// Where the layout goes (CSS px of the layout viewport): down by `top`, `height` tall.
#[derive(Debug, PartialEq)]
struct VisibleArea {
    top: f64,
    height: f64,
}

/// The visible area from the visual viewport's `height`, `scale` and `offset_top`; `None` when
/// the browser reports nonsense (the layout keeps its last values, or the CSS defaults). The
/// height times the scale leaves pinch-zoom out of it; while zoomed in, the offset is the
/// reader panning, which the layout does not follow; a negative offset (Safari's rubber band
/// past the top) is none.
fn visible_area(height: f64, scale: f64, offset_top: f64) -> Option<VisibleArea> {
    if !(height.is_finite() && scale.is_finite() && offset_top.is_finite()) {
        return None;
    }
    if height <= 0.0 || scale <= 0.0 {
        return None;
    }
    let zoomed = scale > 1.01;
    let top = if zoomed {
        0.0
    } else {
        offset_top.max(0.0).floor()
    };
    Some(VisibleArea {
        top,
        height: (height * scale).floor(),
    })
}

#[cfg(test)]
mod tests {
    use super::{visible_area, VisibleArea};

    #[test]
    fn the_layout_follows_the_visual_viewport_down_the_page_when_the_keyboard_opens() {
        // No keyboard: the whole screen.
        assert_eq!(
            visible_area(740.0, 1.0, 0.0),
            Some(VisibleArea {
                top: 0.0,
                height: 740.0
            })
        );
        // iOS with the keyboard open: 420 px seen, 310.5 px down the page.
        assert_eq!(
            visible_area(420.0, 1.0, 310.5),
            Some(VisibleArea {
                top: 310.0,
                height: 420.0
            })
        );
    }

    #[test]
    fn pinch_zoom_and_rubber_banding_do_not_move_the_layout() {
        // Zoomed in twice, panned down: the layout stays as it was.
        assert_eq!(
            visible_area(370.0, 2.0, 200.0),
            Some(VisibleArea {
                top: 0.0,
                height: 740.0
            })
        );
        // Pulled past the top.
        assert_eq!(
            visible_area(740.0, 1.0, -30.0),
            Some(VisibleArea {
                top: 0.0,
                height: 740.0
            })
        );
    }

    #[test]
    fn nonsense_from_the_browser_changes_nothing() {
        assert_eq!(visible_area(f64::NAN, 1.0, 0.0), None);
        assert_eq!(visible_area(740.0, 0.0, 0.0), None);
        assert_eq!(visible_area(0.0, 1.0, 0.0), None);
        assert_eq!(visible_area(740.0, 1.0, f64::INFINITY), None);
    }
}
