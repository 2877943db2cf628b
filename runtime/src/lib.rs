//! StorePulse runtime.
