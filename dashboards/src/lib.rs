//! StorePulse dashboards.
