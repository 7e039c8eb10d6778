//! Where the page's connection is, and when it tries again: plain data and functions, no signals
//! and no browser, so that what a line does to the cursor, what a dropped connection asks for
//! again, and the waits in between are unit-tested natively.

use std::time::Duration;

use uuid::Uuid;

use crate::model::{Outcome, SendRequest, TurnEvent, HEARTBEAT_SECS};

/// A stream silent for this long (no event, no heartbeat) is taken for dead.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(HEARTBEAT_SECS * 5 / 2);
/// Waits between reconnection attempts grow from the first to the last.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
pub const LAST_RETRY: Duration = Duration::from_secs(8);

/// What the page's connection asks for next, and from where; kept up to date line by line so
/// that a reconnection carries on exactly where the last one stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Cursor {
    /// This page's send that no event has acknowledged yet: sending it again is safe (the server
    /// knows the turn id).
    Send(SendRequest),
    /// A Continue this page asked for that no event has acknowledged yet: asking again is safe
    /// (the server follows the continuation already started from `from_run`). `before` is how the
    /// reply stood, to put back if the server says no.
    Continue {
        conversation_id: Uuid,
        turn_id: Uuid,
        from_run: u32,
        before: Outcome,
    },
    /// Following one run of a turn, after the event numbered `seq`.
    Turn {
        conversation_id: Uuid,
        turn_id: Uuid,
        run: u32,
        seq: u32,
    },
    /// Following the conversation, having its turns up to `from_turn`.
    Watch {
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    },
}

/// The server call a cursor makes: the first time, and again after every drop.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Send(SendRequest),
    Continue {
        turn_id: Uuid,
        from_run: u32,
    },
    TurnEvents {
        turn_id: Uuid,
        run: u32,
        after_seq: u32,
    },
    ConversationEvents {
        conversation_id: Uuid,
        from_turn: Option<Uuid>,
    },
}

impl Cursor {
    pub fn request(&self) -> Request {
        match self {
            Self::Send(request) => Request::Send(request.clone()),
            Self::Continue {
                turn_id, from_run, ..
            } => Request::Continue {
                turn_id: *turn_id,
                from_run: *from_run,
            },
            Self::Turn {
                turn_id, run, seq, ..
            } => Request::TurnEvents {
                turn_id: *turn_id,
                run: *run,
                after_seq: *seq,
            },
            Self::Watch {
                conversation_id,
                from_turn,
            } => Request::ConversationEvents {
                conversation_id: *conversation_id,
                from_turn: *from_turn,
            },
        }
    }

    pub fn is_watch(&self) -> bool {
        matches!(self, Self::Watch { .. })
    }

    /// A send or Continue no event has acknowledged: the server may not have its turn yet.
    pub fn awaits_acknowledgement(&self) -> bool {
        matches!(self, Self::Send(_) | Self::Continue { .. })
    }

    /// The turn whose events this cursor's stream carries; `None` for a conversation's stream,
    /// which announces each turn before its events.
    pub fn own_turn(&self) -> Option<Uuid> {
        match self {
            Self::Send(request) => Some(request.turn_id),
            Self::Continue { turn_id, .. } | Self::Turn { turn_id, .. } => Some(*turn_id),
            Self::Watch { .. } => None,
        }
    }

    /// The conversation followed; `None` only for a send that starts one, until it is named.
    pub fn conversation(&self) -> Option<Uuid> {
        match self {
            Self::Send(request) => request.conversation_id,
            Self::Continue {
                conversation_id, ..
            }
            | Self::Turn {
                conversation_id, ..
            }
            | Self::Watch {
                conversation_id, ..
            } => Some(*conversation_id),
        }
    }

    /// The event numbered `seq` of `turn_id` (the turn the stream follows) arrived. Its
    /// `Started` acknowledges a send or Continue: from then on the run is followed by number.
    /// The number is taken as it comes: the server sends the events after the one asked for,
    /// and a replay from the start begins again with `Started`, which empties the reply.
    pub fn on_event(&mut self, turn_id: Uuid, seq: u32, event: &TurnEvent) {
        match event {
            // In a conversation's stream the cursor only says where to resume the conversation.
            TurnEvent::Started { .. } if self.is_watch() => {}
            TurnEvent::Started {
                conversation_id,
                run,
                ..
            } => {
                *self = Self::Turn {
                    conversation_id: *conversation_id,
                    turn_id,
                    run: *run,
                    seq,
                };
            }
            TurnEvent::Queued { .. } | TurnEvent::Delta { .. } | TurnEvent::Thinking { .. } => {
                if let Self::Turn { seq: last, .. } = self {
                    *last = seq;
                }
            }
            TurnEvent::Finished(_) => {
                if let Some(conversation_id) = self.conversation() {
                    *self = Self::Watch {
                        conversation_id,
                        from_turn: Some(turn_id),
                    };
                }
            }
        }
    }

    /// The conversation's stream announced `turn_id`: one still being written is followed from
    /// its start (its events come next), one already done is had.
    pub fn on_announced(&mut self, turn_id: Uuid, run: u32, streaming: bool) {
        let Some(conversation_id) = self.conversation() else {
            return;
        };
        if !streaming {
            *self = Self::Watch {
                conversation_id,
                from_turn: Some(turn_id),
            };
        } else if !self.is_watch() {
            *self = Self::Turn {
                conversation_id,
                turn_id,
                run,
                seq: 0,
            };
        }
    }

    /// What to follow once the server has refused this cursor's request for good: the
    /// conversation from the last turn the page has (`last_turn`, asked only then), or nothing
    /// when the conversation is what was refused or there is none yet.
    pub fn after_refusal(&self, last_turn: impl FnOnce() -> Option<Uuid>) -> Option<Cursor> {
        if self.is_watch() {
            return None;
        }
        self.conversation().map(|conversation_id| Self::Watch {
            conversation_id,
            from_turn: last_turn(),
        })
    }
}

/// The wait before attempt `failures` in a row (from 1): doubling from [`FIRST_RETRY`] up to
/// [`LAST_RETRY`], shortened by up to a quarter by `jitter` (in [0, 1)) so that many pages do not
/// come back at once.
pub fn retry_wait(failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(5);
    FIRST_RETRY
        .saturating_mul(1 << exponent)
        .min(LAST_RETRY)
        .mul_f64(0.75 + 0.25 * jitter)
}

/// Failures in a row once one more connection is lost: one that had worked (`heard` a line)
/// starts the waits over.
pub fn failures_after_loss(failures: u32, heard: bool) -> u32 {
    if heard {
        1
    } else {
        failures.saturating_add(1)
    }
}

/// Whether a connection that heard its last line at `last_line_ms` has missed a heartbeat by
/// `now_ms` (both ms on one clock): back from a hidden tab or a lost network, it is taken up anew.
pub fn missed_heartbeat(now_ms: f64, last_line_ms: f64) -> bool {
    now_ms - last_line_ms > (HEARTBEAT_SECS as f64 + 5.0) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERSATION: Uuid = Uuid::from_u128(1);
    const TURN: Uuid = Uuid::from_u128(2);
    const EARLIER_TURN: Uuid = Uuid::from_u128(3);

    fn send(conversation_id: Option<Uuid>) -> SendRequest {
        SendRequest {
            turn_id: TURN,
            conversation_id,
            text: "hello".into(),
            model: None,
            system_prompt: None,
            alternative_to: None,
            attachments: Vec::new(),
        }
    }

    fn started(run: u32) -> TurnEvent {
        TurnEvent::Started {
            conversation_id: CONVERSATION,
            message_id: Uuid::from_u128(9),
            model: "m".into(),
            run,
            system_prompt_revision: None,
        }
    }

    fn delta() -> TurnEvent {
        TurnEvent::Delta { text: "x".into() }
    }

    fn turn(run: u32, seq: u32) -> Cursor {
        Cursor::Turn {
            conversation_id: CONVERSATION,
            turn_id: TURN,
            run,
            seq,
        }
    }

    fn watch(from_turn: Option<Uuid>) -> Cursor {
        Cursor::Watch {
            conversation_id: CONVERSATION,
            from_turn,
        }
    }

    #[test]
    fn an_unacknowledged_send_is_sent_again_whole() {
        let mut cursor = Cursor::Send(send(None));
        // Nothing but `Started` acknowledges it.
        cursor.on_event(TURN, 2, &delta());
        assert_eq!(cursor, Cursor::Send(send(None)));
        assert_eq!(cursor.request(), Request::Send(send(None)));
        assert_eq!(cursor.own_turn(), Some(TURN));
        assert!(cursor.awaits_acknowledgement());
    }

    #[test]
    fn started_turns_a_send_into_its_run_in_the_named_conversation() {
        let mut cursor = Cursor::Send(send(None));
        cursor.on_event(TURN, 1, &started(1));
        assert_eq!(cursor, turn(1, 1));
        assert!(!cursor.awaits_acknowledgement());
        assert_eq!(
            cursor.request(),
            Request::TurnEvents {
                turn_id: TURN,
                run: 1,
                after_seq: 1
            }
        );
    }

    #[test]
    fn started_turns_a_continue_into_the_new_run() {
        let mut cursor = Cursor::Continue {
            conversation_id: CONVERSATION,
            turn_id: TURN,
            from_run: 1,
            before: Outcome::complete(),
        };
        assert_eq!(
            cursor.request(),
            Request::Continue {
                turn_id: TURN,
                from_run: 1
            }
        );
        assert!(cursor.awaits_acknowledgement());
        cursor.on_event(TURN, 1, &started(2));
        assert_eq!(cursor, turn(2, 1));
        assert!(!cursor.awaits_acknowledgement());
    }

    #[test]
    fn each_event_moves_the_resume_point_to_its_number() {
        let mut cursor = turn(1, 1);
        cursor.on_event(TURN, 2, &TurnEvent::Queued { ahead: 1 });
        cursor.on_event(TURN, 3, &TurnEvent::Thinking { text: "t".into() });
        cursor.on_event(TURN, 4, &delta());
        assert_eq!(cursor, turn(1, 4));
        assert_eq!(
            cursor.request(),
            Request::TurnEvents {
                turn_id: TURN,
                run: 1,
                after_seq: 4
            }
        );
    }

    #[test]
    fn an_event_number_is_taken_as_it_comes() {
        // Today's behaviour: no event is dropped for its number. The server never sends one at
        // or below the number asked for, except in a replay, which starts again at `Started`.
        let mut cursor = turn(1, 5);
        cursor.on_event(TURN, 5, &delta());
        assert_eq!(cursor, turn(1, 5));
        cursor.on_event(TURN, 3, &delta());
        assert_eq!(cursor, turn(1, 3));
        cursor.on_event(TURN, 1, &started(1));
        assert_eq!(cursor, turn(1, 1));
    }

    #[test]
    fn finished_goes_on_to_watch_the_conversation_from_that_turn() {
        let mut cursor = turn(1, 4);
        cursor.on_event(TURN, 5, &TurnEvent::Finished(Outcome::complete()));
        assert_eq!(cursor, watch(Some(TURN)));
        assert_eq!(
            cursor.request(),
            Request::ConversationEvents {
                conversation_id: CONVERSATION,
                from_turn: Some(TURN)
            }
        );
    }

    #[test]
    fn finished_before_a_new_conversation_is_named_leaves_the_send() {
        let mut cursor = Cursor::Send(send(None));
        cursor.on_event(TURN, 1, &TurnEvent::Finished(Outcome::failed("no")));
        assert_eq!(cursor, Cursor::Send(send(None)));
        let mut cursor = Cursor::Send(send(Some(CONVERSATION)));
        cursor.on_event(TURN, 1, &TurnEvent::Finished(Outcome::failed("no")));
        assert_eq!(cursor, watch(Some(TURN)));
    }

    #[test]
    fn a_watch_stays_a_watch_through_a_turns_events_and_moves_past_it_at_the_end() {
        let mut cursor = watch(Some(EARLIER_TURN));
        cursor.on_announced(TURN, 1, true);
        cursor.on_event(TURN, 1, &started(1));
        cursor.on_event(TURN, 2, &delta());
        assert_eq!(cursor, watch(Some(EARLIER_TURN)));
        cursor.on_event(TURN, 3, &TurnEvent::Finished(Outcome::complete()));
        assert_eq!(cursor, watch(Some(TURN)));
    }

    #[test]
    fn an_announced_turn_already_done_moves_the_watch_past_it() {
        let mut cursor = watch(Some(EARLIER_TURN));
        cursor.on_announced(TURN, 1, false);
        assert_eq!(cursor, watch(Some(TURN)));
    }

    #[test]
    fn an_announced_streaming_turn_is_followed_from_its_start_unless_watching() {
        let mut cursor = turn(1, 7);
        cursor.on_announced(TURN, 2, true);
        assert_eq!(cursor, turn(2, 0));
    }

    #[test]
    fn a_refusal_goes_on_to_follow_the_conversation_if_there_is_one() {
        let last = || Some(EARLIER_TURN);
        assert_eq!(
            Cursor::Send(send(Some(CONVERSATION))).after_refusal(last),
            Some(watch(Some(EARLIER_TURN)))
        );
        assert_eq!(
            turn(1, 3).after_refusal(last),
            Some(watch(Some(EARLIER_TURN)))
        );
        // A new conversation that was never stored: nothing to follow.
        assert_eq!(Cursor::Send(send(None)).after_refusal(last), None);
        // The conversation itself refused: that ends it, without asking the page.
        assert_eq!(
            watch(None).after_refusal(|| unreachable!("not asked")),
            None
        );
    }

    #[test]
    fn waits_double_from_the_first_up_to_the_last() {
        let waits: Vec<Duration> = (1..=8).map(|n| retry_wait(n, 1.0)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000]);
        assert_eq!(retry_wait(0, 1.0), FIRST_RETRY);
        assert_eq!(retry_wait(u32::MAX, 1.0), LAST_RETRY);
    }

    #[test]
    fn jitter_shortens_a_wait_by_at_most_a_quarter() {
        assert_eq!(retry_wait(1, 0.0), Duration::from_millis(375));
        assert_eq!(retry_wait(9, 0.0), Duration::from_secs(6));
        let half = retry_wait(2, 0.5);
        assert!(half > Duration::from_millis(750) && half < Duration::from_millis(1000));
    }

    #[test]
    fn a_connection_that_worked_starts_the_waits_over() {
        assert_eq!(failures_after_loss(4, true), 1);
        assert_eq!(failures_after_loss(4, false), 5);
        assert_eq!(failures_after_loss(u32::MAX, false), u32::MAX);
    }

    #[test]
    fn a_connection_is_quiet_once_a_heartbeat_is_overdue() {
        let limit = (HEARTBEAT_SECS as f64 + 5.0) * 1000.0;
        assert!(!missed_heartbeat(1000.0 + limit, 1000.0));
        assert!(missed_heartbeat(1001.0 + limit, 1000.0));
        assert!(SILENCE_LIMIT > Duration::from_secs(HEARTBEAT_SECS * 2));
    }
}
