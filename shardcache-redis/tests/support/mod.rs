//! What the integration tests share: a server of their own, and a fleet of
//! instances whose reads a checker verifies.
#![allow(dead_code)]

pub mod fleet;
pub mod server;
