//! StorePulse processors.
