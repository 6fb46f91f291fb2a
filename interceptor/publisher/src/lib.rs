//! Placeholder until the publisher lands (issue 3).
