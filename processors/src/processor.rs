//! The processor trait: one required method, do-nothing hooks.
//!
//! Modelled on Arroyo's `ArrowOperator`: [`Processor::apply`] is all a
//! processor must write; [`Processor::on_tick`] is a hook with a default that
//! does nothing, for processors whose state changes as event time passes.

use storepulse_core::{Event, Rejection, Ts};

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed state (or could have: it was new and relevant).
    Applied,
    /// The event id was seen before: nothing changed.
    Duplicate,
    /// The event is new and valid but does not concern this processor.
    Ignored,
}

/// A pure state machine over validated events.
pub trait Processor {
    /// What the processor emits (alerts, changes).
    type Output;

    /// Applies one event, pushing any outputs to `out`.
    ///
    /// # Errors
    /// A [`Rejection`] when the event is valid JSON and contract-valid but
    /// cannot be applied (for example, too late to be placed exactly); the
    /// runtime sends it to the dead-letter log. State is unchanged then.
    fn apply(&mut self, event: &Event, out: &mut Vec<Self::Output>) -> Result<Outcome, Rejection>;

    /// Called by the runtime when the event-time clock advances without an
    /// event of this processor (explicit ticks, never a wall clock read here).
    fn on_tick(&mut self, _event_time: Ts, _out: &mut Vec<Self::Output>) {}
}
