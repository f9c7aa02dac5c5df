//! The ratatui dashboard. (Being built: issue 7.)
