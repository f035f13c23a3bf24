//! The real network: the wire protocol over TCP and the TCP transport (issue: discovery
//! and the real network).
