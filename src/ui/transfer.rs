//! `/import-export`: all of a person's conversations out as one archive, and an export of
//! ChatGPT, Claude or Rill in, with its progress as it goes and a summary at the end. (One
//! conversation's Markdown and JSON are in its Settings panel.)

use leptos::prelude::*;

use crate::format::{byte_size, thousands};
use crate::model::transfer::{ImportLine, ImportSummary};
use crate::ui::account::Panel;
use crate::ui::upload::{self, Progress};

/// Where an import stands.
#[derive(Clone, Debug, PartialEq)]
enum Stage {
    Idle,
    Sending {
        sent: f64,
        total: f64,
    },
    Reading {
        format: String,
        summary: ImportSummary,
    },
    Done(ImportSummary),
    Failed {
        error: String,
        summary: ImportSummary,
    },
}

impl Stage {
    fn running(&self) -> bool {
        matches!(self, Stage::Sending { .. } | Stage::Reading { .. })
    }

    /// The next stage after a step of the upload.
    fn after(self, step: Progress) -> Stage {
        match step {
            Progress::Sending { sent, total } => match self {
                Stage::Idle | Stage::Sending { .. } => Stage::Sending { sent, total },
                other => other,
            },
            Progress::Line(ImportLine::Started { format }) => Stage::Reading {
                format,
                summary: ImportSummary::default(),
            },
            Progress::Line(ImportLine::Progress(summary)) => match self {
                Stage::Reading { format, .. } => Stage::Reading { format, summary },
                _ => Stage::Reading {
                    format: String::new(),
                    summary,
                },
            },
            Progress::Line(ImportLine::Done(summary)) => Stage::Done(summary),
            Progress::Line(ImportLine::Failed { error, summary }) => {
                Stage::Failed { error, summary }
            }
            Progress::Refused(error) => match self {
                // A summary already in is the end; a lost connection after it changes nothing.
                done @ (Stage::Done(_) | Stage::Failed { .. }) => done,
                _ => Stage::Failed {
                    error,
                    summary: ImportSummary::default(),
                },
            },
        }
    }
}

fn counts(summary: &ImportSummary) -> String {
    let conversations = |n: u32| {
        if n == 1 {
            "1 conversation".to_owned()
        } else {
            format!("{} conversations", thousands(n))
        }
    };
    let mut text = format!("{} imported", conversations(summary.imported));
    if summary.skipped > 0 {
        text.push_str(&format!(", {} skipped", thousands(summary.skipped)));
    }
    text
}

#[component]
pub fn TransferPage() -> impl IntoView {
    let stage = RwSignal::new(Stage::Idle);
    let chosen = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    let start = move || {
        let Some(file) = input
            .get_untracked()
            .and_then(|i| i.files())
            .and_then(|files| files.get(0))
        else {
            return;
        };
        stage.set(Stage::Sending {
            sent: 0.0,
            total: file.size(),
        });
        let report = move |step: Progress| {
            stage.try_update(|stage| *stage = std::mem::replace(stage, Stage::Idle).after(step));
        };
        if let Err(error) = upload::send(file, report) {
            stage.set(Stage::Failed {
                error,
                summary: ImportSummary::default(),
            });
        }
    };
    let status = move || match stage.get() {
        Stage::Idle => String::new(),
        Stage::Sending { sent, total } => {
            // Byte counts fit in u64 (a browser's file sizes are whole numbers).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let (sent, total) = (sent as u64, total as u64);
            format!(
                "Sending the file: {} of {}…",
                byte_size(sent),
                byte_size(total)
            )
        }
        Stage::Reading { format, summary } => {
            let what = if format.is_empty() {
                String::new()
            } else {
                format!("Reading {format}: ")
            };
            format!("{what}{}…", counts(&summary))
        }
        Stage::Done(summary) => format!("Done: {}.", counts(&summary)),
        Stage::Failed { error, summary } => {
            format!("Stopped: {error}. {}.", counts(&summary))
        }
    };
    let fraction = move || match stage.get() {
        Stage::Sending { sent, total } if total > 0.0 => Some(sent / total),
        _ => None,
    };
    let reasons = move || match stage.get() {
        Stage::Done(s) | Stage::Failed { summary: s, .. } | Stage::Reading { summary: s, .. } => {
            s.reasons
        }
        _ => Vec::new(),
    };
    let finished = move || matches!(stage.get(), Stage::Done(ref s) | Stage::Failed { summary: ref s, .. } if s.imported > 0);
    view! {
        <Panel title="Import and export" back=true>
            <section class="transfer" aria-labelledby="export-heading">
                <h2 id="export-heading">"Export"</h2>
                <p>
                    "All your conversations, every branch, with their system prompts, models, usage and times: JSON lines in a zip archive, with the files attached to them beside. One conversation as Markdown, JSON or an archive with its files: its Settings panel."
                </p>
                <p><a class="button" href="/export/all.zip" download>"Download all conversations (zip)"</a></p>
            </section>
            <section class="transfer" aria-labelledby="import-heading">
                <h2 id="import-heading">"Import"</h2>
                <p>
                    "From ChatGPT (its data export: the zip archive or its conversations.json), Claude (conversations.json from its data export) or Rill (the archive above, one conversation's archive, or its JSON). Branches are kept, and attached files come with them from a Rill archive, counted against your daily allowance of uploads. Each conversation comes in whole or not at all; one imported before is skipped. Continue any of them with a model of this server."
                </p>
                <form class="import-form" on:submit=move |ev| { ev.prevent_default(); start(); }>
                    <label for="import-file">"Export file"</label>
                    <input
                        type="file"
                        id="import-file"
                        accept=".zip,.json,.jsonl,application/zip,application/json"
                        node_ref=input
                        on:change=move |_| chosen.set(input.get_untracked().and_then(|i| i.files()).is_some_and(|f| f.length() > 0))
                    />
                    <button type="submit" class="primary" disabled=move || !chosen.get() || stage.with(Stage::running)>
                        "Import"
                    </button>
                </form>
                {move || fraction().map(|f| view! {
                    <progress class="import-sending" max="1" value=f aria-label="Sending the file"></progress>
                })}
                <p class="import-status" role="status" aria-live="polite">{status}</p>
                {move || {
                    let reasons = reasons();
                    (!reasons.is_empty()).then(|| view! {
                        <details class="import-skipped">
                            <summary>"Why some were skipped"</summary>
                            <ul>{reasons.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}</ul>
                        </details>
                    })
                }}
                <Show when=finished>
                    <p><a href="/">"Open your conversations"</a></p>
                </Show>
            </section>
        </Panel>
    }
}
