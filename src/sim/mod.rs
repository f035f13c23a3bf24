//! The deterministic network simulator (issue: simulator).
