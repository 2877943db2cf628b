//! StorePulse load generator.
