//! The connection handler: request-response's, kept alive while the core keeps the
//! connection.
//!
//! libp2p closes a connection once no handler asks to keep it (after the swarm's idle
//! timeout). request-response's handler asks only while a request is in flight, so the
//! connections the core keeps would close between two requests. This wrapper answers
//! "keep it" for the connections the behaviour manages, and defers to request-response
//! for the others (a refused connection lingering to deliver its points, or one another
//! behaviour dialed).

use libp2p::request_response;
use libp2p::swarm::handler::{ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent};
use libp2p::swarm::{NetworkBehaviour, SubstreamProtocol};
use std::task::{Context, Poll};

pub(crate) type Inner =
    <request_response::Behaviour<crate::codec::Codec> as NetworkBehaviour>::ConnectionHandler;

/// request-response's handler, kept alive when `keep_alive` says so.
pub struct Handler {
    pub(crate) inner: Inner,
    pub(crate) keep_alive: bool,
}

/// What the behaviour tells a connection's handler.
#[derive(Debug)]
pub enum FromBehaviour {
    /// For request-response.
    Inner(<Inner as ConnectionHandler>::FromBehaviour),
    /// Keep the connection alive or not.
    KeepAlive(bool),
}

impl ConnectionHandler for Handler {
    type FromBehaviour = FromBehaviour;
    type ToBehaviour = <Inner as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep_alive || self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: FromBehaviour) {
        match event {
            FromBehaviour::Inner(e) => self.inner.on_behaviour_event(e),
            FromBehaviour::KeepAlive(k) => self.keep_alive = k,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        self.inner.on_connection_event(event)
    }
}
