//! StorePulse sinks.
