//! Small utilities more than one stage needs: number and duration
//! formatting, clocks, identity-hashed maps, diagnostics, and opening an
//! output. They sit at the bottom of the flow and import nothing above them.

pub(crate) mod clock;
pub(crate) mod diag;
pub(crate) mod fmt;
pub(crate) mod idmap;
pub(crate) mod output;
