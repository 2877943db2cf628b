//! End-to-end tests of StorePulse (see tests/tests/).
