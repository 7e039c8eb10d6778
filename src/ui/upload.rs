//! The browser's side of an import: the file sent as the request's body (`XMLHttpRequest`, the
//! one browser API that reports an upload's progress), and the answer's lines read as they
//! arrive. The page sees only [`Progress`].

use leptos::wasm_bindgen::closure::Closure;
use leptos::wasm_bindgen::JsCast;

use crate::model::transfer::{ImportLine, IMPORT_PATH};

/// How an import goes, as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The file is on its way: this many bytes of that many.
    Sending { sent: f64, total: f64 },
    /// A line of the server's answer.
    Line(ImportLine),
    /// The request failed before the server answered in lines: why, in words.
    Refused(String),
}

/// Sends `file` to the import path, calling `report` with every step; the request lives until
/// it ends (the browser holds it, and the callbacks with it).
pub fn send(
    file: web_sys::File,
    report: impl Fn(Progress) + Clone + 'static,
) -> Result<(), String> {
    let fail = |_| "the browser could not send the file".to_owned();
    let request = web_sys::XmlHttpRequest::new().map_err(fail)?;
    request.open("POST", IMPORT_PATH).map_err(fail)?;
    request
        .set_request_header("content-type", "application/octet-stream")
        .map_err(fail)?;
    let upload = request.upload().map_err(fail)?;
    let on_upload = {
        let report = report.clone();
        Closure::<dyn Fn(web_sys::ProgressEvent)>::new(move |event: web_sys::ProgressEvent| {
            report(Progress::Sending {
                sent: event.loaded(),
                total: event.total(),
            });
        })
    };
    upload.set_onprogress(Some(on_upload.as_ref().unchecked_ref()));
    // Lines are handed on once whole; `read` is how much of the answer has been.
    let read = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let on_answer = {
        let (request, report, read) = (request.clone(), report.clone(), read.clone());
        move || {
            let text = request.response_text().ok().flatten().unwrap_or_default();
            let status = request.status().unwrap_or(0);
            if status != 200 {
                return;
            }
            let mut from = read.get().min(text.len());
            while let Some(end) = text[from..].find('\n') {
                let line = &text[from..from + end];
                if let Ok(line) = serde_json::from_str::<ImportLine>(line) {
                    report(Progress::Line(line));
                }
                from += end + 1;
            }
            read.set(from);
        }
    };
    let on_progress = {
        let on_answer = on_answer.clone();
        Closure::<dyn Fn()>::new(on_answer)
    };
    request.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    let on_load = {
        let (request, report) = (request.clone(), report.clone());
        Closure::<dyn Fn()>::new(move || {
            on_answer();
            let status = request.status().unwrap_or(0);
            if status != 200 {
                let text = request.response_text().ok().flatten().unwrap_or_default();
                report(Progress::Refused(refusal(status, &text)));
            }
        })
    };
    request.set_onload(Some(on_load.as_ref().unchecked_ref()));
    let on_error = Closure::<dyn Fn()>::new(move || {
        report(Progress::Refused(
            "the connection to the server was lost; what was imported before stays".into(),
        ));
    });
    request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    request.send_with_opt_blob(Some(&file)).map_err(fail)?;
    // The request and the browser own the callbacks from here until it ends.
    on_upload.forget();
    on_progress.forget();
    on_load.forget();
    on_error.forget();
    Ok(())
}

/// A refusal's words: the server's (an API error's JSON), or the status's (an import's, and an
/// attachment's upload).
pub fn refusal(status: u16, text: &str) -> String {
    if let Ok(error) = serde_json::from_str::<crate::error::ApiError>(text) {
        return error.to_string();
    }
    match status {
        413 => "the file is larger than this server takes".into(),
        0 => "the server could not be reached".into(),
        _ => format!("the server refused the file ({status})"),
    }
}
