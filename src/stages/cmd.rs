//! Shell command stages (being written).
